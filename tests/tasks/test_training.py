"""Acceptance tests of training: coco8 trained through the API in a worker subprocess (offline
Ultralytics), its epochs recorded as they come, its model registered; a cancel that keeps the
weights and a resume that finishes the epochs; the refusals before anything is queued."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.domain.errors import Invalid
from app.domain.models import Annotation
from app.domain.resources import InsufficientStorage
from app.domain.stores import Stores
from app.main import create_app
from app.services.system import disk_full_guard
from app.services.training import training_epochs
from app.tasks.context import TaskContext
from app.tasks.runner import TaskRunner
from app.tasks.training import (
    StopTraining,
    TrainingBridge,
    backfill_epochs,
    train_project,
    training_folder,
)
from app.web.formatting import file_size
from tests.conftest import TEST_DATA, arm_csrf, encode, make_image
from tests.tasks.conftest import process_gone, wait_until
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving
from tests.web.htmltree import parse

PROJECT = "coco8"

# Loaded by every Python process started with it on PYTHONPATH (the task workers): refuses and
# notes each connection or name lookup that is not a local socket.
NETWORK_GUARD = """
import os, socket

_LOG = os.environ.get("YDC_TEST_NETWORK_LOG")
if _LOG:
    with open(_LOG + ".loaded", "a") as _out:
        _out.write(f"{os.getpid()}\\n")

    def _refuse(name, original):
        def refused(*args, **kwargs):
            if name != "getaddrinfo" and args[0].family == socket.AF_UNIX:
                return original(*args, **kwargs)
            with open(_LOG, "a") as out:
                out.write(f"{name} {args[1:] if name != 'getaddrinfo' else args}"[:300] + "\\n")
            raise OSError(f"network refused by the test: {name}")
        return refused

    socket.socket.connect = _refuse("connect", socket.socket.connect)
    socket.socket.connect_ex = _refuse("connect", socket.socket.connect_ex)
    socket.getaddrinfo = _refuse("getaddrinfo", socket.getaddrinfo)
"""


@pytest.fixture
def network_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Workers started in the test refuse the network; yields the file of their attempts."""
    guard = tmp_path / "network-guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    attempts = tmp_path / "network-attempts.txt"
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("YDC_TEST_NETWORK_LOG", str(attempts))
    yield attempts
    assert Path(f"{attempts}.loaded").is_file(), "no worker loaded the network guard"
    assert not attempts.exists(), attempts.read_text()


FIGURES = {"map50", "map50_95", "precision", "recall", "box_loss", "cls_loss", "dfl_loss"}


async def import_coco8(stores: Stores) -> None:
    report = await stores.dataset.import_dataset(PROJECT, TEST_DATA / "coco8", create=True)
    assert report is not None
    info = await stores.dataset.get(PROJECT)
    assert info is not None and info.num_images["train"] == 4 and info.num_images["val"] == 4


def model_row(settings: Settings, name: str) -> dict[str, Any]:
    """The registry row as stored (``ModelInfo`` does not carry every column)."""
    with sqlite3.connect(settings.data_dir / "ydc.db") as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM model WHERE name = ?", (name,)).fetchone()
    assert row is not None, name
    return dict(row)


async def follow(
    client: httpx.AsyncClient, task_id: int, *, within: float, seen: list[dict[str, Any]]
) -> dict[str, Any]:
    """Poll the task every 100 ms until it ends, keeping what each poll saw."""
    deadline = time.monotonic() + within
    while True:
        task = await get_task(client, task_id)
        seen.append(task)
        if task["status"] in FINISHED:
            return task
        assert time.monotonic() < deadline, (
            f"task {task_id} still {task['status']} after {within} s"
        )
        await asyncio.sleep(0.1)


async def test_coco8_trains_through_the_api_with_live_progress_and_becomes_a_model(
    settings: Settings, stores: Stores, network_refused: Path
) -> None:
    await import_coco8(stores)

    async with serving(settings) as (_, client):
        response = await client.post(
            f"/api/v1/projects/{PROJECT}/train",
            json={"base": "yolo11n.yaml", "epochs": 3, "imgsz": 64, "batch": 2},
        )
        assert response.status_code == 202, response.text
        queued = response.json()
        task_id = queued["id"]
        seen: list[dict[str, Any]] = [queued]
        task = await follow(client, task_id, within=120, seen=seen)
        epochs = (await client.get(f"/api/v1/tasks/{task_id}/epochs")).json()
        panel = (await client.get(f"/tasks/{task_id}/training-panel")).text
        models_page = (await client.get(f"/projects/{PROJECT}/models")).text

    assert task["status"] == "succeeded", task
    statuses = [s["status"] for s in seen]
    assert statuses[0] == "queued"
    assert "running" in statuses
    assert statuses == sorted(statuses, key=["queued", "running", "succeeded"].index)
    running = [s["progress"] for s in seen if s["status"] == "running"]
    assert any(0.0 < p < 1.0 for p in running), running
    assert running == sorted(running), "progress went backwards"
    assert task["progress"] == 1.0

    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    for row in epochs:
        assert row.keys() >= FIGURES, row

    result = task["result"]
    name = result["model"]
    assert name == f"coco8-{task_id}"
    assert result["epochs_completed"] == 3
    assert result["snapshot"]["images"] == {"train": 4, "val": 4, "test": 0}
    assert result["device"] in {"cpu", "cuda:0"}
    assert result["final"] == {k: v for k, v in epochs[-1].items() if k != "epoch"}
    # Its worker's peak memory (torch and Ultralytics loaded: well over 100 MB), GPU memory
    # only where it trained on one; shown on its panel and its model's card.
    peak = result["peak_ram_bytes"]
    assert isinstance(peak, int) and peak > 100 * 1000**2, result
    if result["device"] == "cpu":
        assert result["peak_gpu_bytes"] is None and result["peak_gpu_reserved_bytes"] is None
    else:
        assert 0 < result["peak_gpu_bytes"] <= result["peak_gpu_reserved_bytes"]
    shown = parse(panel).find("p", class_="training-resources").text()
    assert f"Peak memory: RAM {file_size(peak)}" in shown
    assert ("GPU none used" in shown) == (result["device"] == "cpu")
    card = parse(models_page).find("article", id=f"model-{result['model']}")
    assert card.find("dd", class_="metric-peak-ram").text() == file_size(peak)
    log = settings.data_dir / result["log"]
    assert result["log"] == f"training/task-{task_id}/train.log"
    text = log.read_text(encoding="utf-8")
    assert "epoch 3 of 3" in text
    assert "\x1b[" not in text  # no terminal colours in the kept log

    info = await stores.model.get(name)
    assert info is not None
    assert info.dataset_name == PROJECT
    assert info.base_model == "yolo11n.yaml"
    assert info.epochs_completed == 3
    assert info.path.name == "best.pt" and info.path.is_file()
    assert (info.path.parent / "last.pt").is_file()
    assert [row["epoch"] for row in info.metrics["epochs"]] == [1, 2, 3]
    assert info.metrics["args"]["epochs"] == 3
    assert info.metrics["snapshot"] == result["snapshot"]
    assert info.metrics["peak_ram_bytes"] == peak
    row = model_row(settings, name)
    assert row["task_id"] == task_id
    assert json.loads(row["trained_on"]) == result["snapshot"]
    # The snapshot the model saw stays beside its run.
    snapshot = settings.data_dir / "training" / f"task-{task_id}" / "dataset"
    assert len(list((snapshot / "images" / "train").iterdir())) == 4

    await stores.model.set_active(name)
    active = await stores.model.get_active(dataset=PROJECT)
    assert active is not None and active.name == name and active.is_active

    # The model is a base to fine-tune: its weights start the next training.
    async with serving(settings) as (_, client):
        response = await client.post(
            f"/api/v1/projects/{PROJECT}/train",
            json={"base": f"model:{name}", "epochs": 1, "imgsz": 64, "batch": 2},
        )
        assert response.status_code == 202, response.text
        tuning = await follow(client, response.json()["id"], within=120, seen=[])

    assert tuning["status"] == "succeeded", tuning
    tuned = await stores.model.get(tuning["result"]["model"])
    assert tuned is not None and tuned.name != name
    assert tuned.base_model == f"model:{name}"
    assert tuned.epochs_completed == 1
    tuning_log = (settings.data_dir / tuning["result"]["log"]).read_text(encoding="utf-8")
    assert "Transferred" in tuning_log and "from pretrained weights" in tuning_log


async def test_a_cancelled_training_keeps_its_weights_and_its_resume_finishes_the_epochs(
    settings: Settings, stores: Stores, network_refused: Path
) -> None:
    epochs_asked = 20
    await import_coco8(stores)

    async with serving(settings) as (app, client):
        runner: TaskRunner = app.state.runner
        response = await client.post(
            f"/api/v1/projects/{PROJECT}/train",
            json={"base": "yolo11n.yaml", "epochs": epochs_asked, "imgsz": 64, "batch": 2},
        )
        task_id = response.json()["id"]

        async def recorded() -> list[dict[str, Any]]:
            return (await client.get(f"/api/v1/tasks/{task_id}/epochs")).json()  # type: ignore[no-any-return]

        await wait_until(
            recorded, lambda rows: len(rows) >= 2, within=90, what="two epochs of the training"
        )
        pid = runner.child_of(task_id).pid  # type: ignore[union-attr]
        response = await client.post(f"/api/v1/tasks/{task_id}/cancel")
        assert response.status_code == 200, response.text
        asked = time.monotonic()
        task = await wait_until(
            lambda: get_task(client, task_id),
            lambda t: t["status"] in FINISHED,
            within=10,
            interval=0.1,
            what="the cancelled training to end",
        )
        assert task["status"] == "cancelled", task

        async def children() -> dict[str, Any]:
            return dict(runner.children)

        await wait_until(
            children,
            lambda c: not c,
            within=max(0.5, asked + 10 - time.monotonic()),
            what="the runner to reap the worker",
        )
        assert process_gone(pid)
        done_before = [row["epoch"] for row in await recorded()]
        assert done_before == list(range(1, len(done_before) + 1))
        assert 2 <= len(done_before) < epochs_asked
        last = settings.data_dir / "training" / f"task-{task_id}" / "run" / "weights" / "last.pt"
        assert last.is_file()
        assert await stores.model.list(dataset=PROJECT) == []

        response = await client.post(f"/api/v1/tasks/{task_id}/resume")
        assert response.status_code == 202, response.text
        resumed_id = response.json()["id"]
        assert resumed_id != task_id
        resumed = await follow(client, resumed_id, within=120, seen=[])
        merged = (await client.get(f"/api/v1/tasks/{resumed_id}/epochs")).json()

    assert resumed["status"] == "succeeded", resumed
    assert [row["epoch"] for row in merged] == list(range(1, epochs_asked + 1))
    own = [row["epoch"] for row in await stores.task.epochs(resumed_id)]
    assert own == list(range(len(done_before) + 1, epochs_asked + 1))
    result = resumed["result"]
    assert result["resumed"] == task_id
    assert result["epochs_completed"] == epochs_asked
    assert result["run"] == f"training/task-{task_id}/run"
    info = await stores.model.get(result["model"])
    assert info is not None and info.epochs_completed == epochs_asked
    assert result["model"] == f"coco8-{resumed_id}"
    assert info.path.is_file() and (info.path.parent / "last.pt").is_file()
    assert model_row(settings, info.name)["task_id"] == resumed_id
    assert info.metrics["snapshot"]["images"] == {"train": 4, "val": 4, "test": 0}
    assert await training_epochs(stores, resumed_id) == merged


async def claimed_training(
    stores: Stores, settings: Settings, params: dict[str, Any], project: str = PROJECT
) -> TaskContext:
    """A training queued behind the API's back and claimed, to run its job in this process
    (as far as it gets before Ultralytics)."""
    await stores.task.enqueue("train", params, dataset=project, max_attempts=1)
    claimed = await stores.task.claim("test-worker")
    assert claimed is not None
    return TaskContext(claimed, "test-worker", stores.task, settings.task_heartbeat_s)


async def test_a_resume_whose_last_weights_are_gone_fails_with_the_reason(
    settings: Settings, stores: Stores
) -> None:
    await import_coco8(stores)
    earlier = await stores.task.enqueue("train", {"epochs": 3}, dataset=PROJECT, max_attempts=1)
    await stores.task.request_cancel(earlier.id)  # cancelled before it ran: no weights
    ctx = await claimed_training(stores, settings, {"epochs": 3, "resume_of": earlier.id})

    with pytest.raises(Invalid, match=f"Training {earlier.id} left no weights to resume from"):
        await train_project(ctx, stores)


async def test_a_resume_whose_dataset_snapshot_is_gone_fails_with_the_reason(
    settings: Settings, stores: Stores
) -> None:
    await import_coco8(stores)
    earlier = await stores.task.enqueue("train", {"epochs": 3}, dataset=PROJECT, max_attempts=1)
    await stores.task.request_cancel(earlier.id)
    weights = settings.data_dir / "training" / f"task-{earlier.id}" / "run" / "weights"
    weights.mkdir(parents=True)
    (weights / "last.pt").write_bytes(b"weights of a run whose snapshot was deleted")
    ctx = await claimed_training(stores, settings, {"epochs": 3, "resume_of": earlier.id})

    with pytest.raises(Invalid, match=f"The dataset snapshot training {earlier.id} learnt from"):
        await train_project(ctx, stores)


RESULTS_CSV = """epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B),\
metrics/recall(B),metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/dfl_loss,lr/pg0
1,0.2,5.9,5.2,3.7,0,0,0,0,6.5,6.1,4.1,2e-05
2,0.2,4.9,4.2,2.7,0.1,0.2,0.3,0.1,5.5,5.1,3.1,5e-05
3,0.2,3.9,3.2,1.7,0.2,0.3,0.4,0.2,4.5,4.1,2.1,8e-05
"""


async def test_epochs_saved_by_ultralytics_but_never_recorded_are_taken_from_its_results_csv(
    stores: Stores, tmp_path: Path
) -> None:
    # A worker killed after Ultralytics saved epochs 2 and 3 but before ydc recorded them.
    await import_coco8(stores)
    earlier = await stores.task.enqueue("train", {"epochs": 9}, dataset=PROJECT, max_attempts=1)
    await stores.task.record_epoch(earlier.id, 1, {"map50": 0.0, "box_loss": 5.9})
    results = tmp_path / "results.csv"
    results.write_text(RESULTS_CSV, encoding="utf-8")

    added = await backfill_epochs(stores, earlier.id, results)
    again = await backfill_epochs(stores, earlier.id, results)

    assert (added, again) == ([2, 3], [])
    epochs = await training_epochs(stores, earlier.id)
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    assert epochs[0] == {"epoch": 1, "map50": 0.0, "box_loss": 5.9}  # recorded rows stay
    assert epochs[2]["map50"] == 0.4 and epochs[2]["box_loss"] == 3.9
    assert epochs[2]["val_dfl_loss"] == 2.1 and epochs[2]["map50_95"] == 0.2
    assert "lr/pg0" not in epochs[2] and "time" not in epochs[2]


async def test_a_training_whose_val_labels_went_after_it_was_queued_fails_with_the_reason(
    settings: Settings, stores: Stores
) -> None:
    await labelled_project(stores)
    ctx = await claimed_training(stores, settings, {"epochs": 1, "imgsz": 64}, project="small")
    await stores.label.save("small", "val", "val.png", [])  # unlabelled again

    with pytest.raises(Invalid, match="has no labelled val images to measure it on any more"):
        await train_project(ctx, stores)


async def test_a_training_whose_disk_went_below_the_reserve_since_it_was_queued_does_not_start(
    settings: Settings, stores: Stores
) -> None:
    await labelled_project(stores)
    ctx = await claimed_training(stores, settings, {"epochs": 1, "imgsz": 64}, project="small")
    figures = os.statvfs(settings.data_dir)
    stores.disk_reserve = figures.f_bavail * figures.f_frsize + 10**12  # 1 TB over the free

    with pytest.raises(InsufficientStorage, match=r"ydc keeps .* free \(YDC_DISK_RESERVE_MB\)"):
        await train_project(ctx, stores)
    assert not training_folder(settings.data_dir, ctx.task.id).exists()  # no snapshot copied


async def test_a_disk_that_fills_while_a_training_runs_fails_it_in_the_reserves_words(
    tmp_path: Path,
) -> None:
    guard = disk_full_guard(tmp_path, 500 * 1000**2, outcome="The training stopped.")
    with pytest.raises(InsufficientStorage) as caught, guard:
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.message.startswith("The disk is full: ")
    assert f"free on {tmp_path}" in caught.value.message
    assert "ydc keeps 500 MB free (YDC_DISK_RESERVE_MB). The training stopped." in (
        caught.value.message
    )
    with pytest.raises(PermissionError), disk_full_guard(tmp_path, 1, outcome=""):
        raise PermissionError("not ours to translate")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"base": "yolo99.yaml"}, "'yolo99.yaml' is not an architecture ydc trains"),
        ({"imgsz": 100}, "Image size must be a multiple of 32"),
        ({"epochs": 0}, "Epochs must be between 1 and"),
        ({"batch": "many"}, "Batch must be a whole number"),
        ({"base": "model:nobody"}, "There is no model 'nobody' in this project"),
    ],
)
async def test_a_training_with_bad_settings_is_refused_before_it_is_queued(
    settings: Settings, stores: Stores, body: dict[str, Any], reason: str
) -> None:
    await labelled_project(stores, val_labelled=True)

    detail = await refused(settings, stores, body)

    assert reason in detail


@pytest.mark.parametrize(
    ("train", "val", "reason"),
    [
        (False, True, "has no labelled train images to learn from"),
        (True, False, "has no labelled val images to measure it on"),
    ],
)
async def test_a_training_of_a_project_without_labelled_train_or_val_images_is_refused(
    settings: Settings, stores: Stores, train: bool, val: bool, reason: str
) -> None:
    await labelled_project(stores, train_labelled=train, val_labelled=val)

    detail = await refused(settings, stores, {"epochs": 1, "imgsz": 64})

    assert reason in detail


async def labelled_project(
    stores: Stores, *, train_labelled: bool = True, val_labelled: bool = True
) -> None:
    """A project with one train and one val image, each labelled or not."""
    await stores.dataset.create("small", ["thing"])
    for seed, (split, labelled) in enumerate((("train", train_labelled), ("val", val_labelled))):
        data = encode(make_image(64, 48, seed=seed), ".png")
        info = await stores.image.save_file("small", split, f"{split}.png", io.BytesIO(data))
        if labelled:
            box = Annotation(0, 0.5, 0.5, 0.25, 0.25)
            await stores.label.save("small", split, info.filename, [box])


async def refused(settings: Settings, stores: Stores, body: dict[str, Any]) -> str:
    """POST the training; assert a 422 and that nothing was queued; the reason given."""
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await arm_csrf(client)
            response = await client.post("/api/v1/projects/small/train", json=body)
    assert response.status_code == 422, response.text
    assert await stores.task.list() == []
    return str(response.json()["detail"])


class FakeTrainer:
    """What the callbacks read of an Ultralytics trainer."""

    def __init__(self, epochs: int) -> None:
        self.epoch, self.epochs = 0, epochs
        self.device = "cpu"
        self.metrics: dict[str, float] = {}
        self.tloss: dict[str, float] = {}

    def label_loss_items(self, tloss: dict[str, float], prefix: str = "train") -> dict[str, float]:
        return {f"{prefix}/{key}": value for key, value in tloss.items()}

    def finish_epoch(self, bridge: Any, epoch: int, map50: float) -> None:
        self.epoch = epoch
        self.tloss = {"box_loss": 1.0 / (epoch + 1)}
        self.metrics = {"metrics/mAP50(B)": map50, "val/box_loss": 2.0}
        bridge.callbacks()["on_train_epoch_end"](self)
        bridge.callbacks()["on_fit_epoch_end"](self)


async def test_the_callbacks_hand_each_epoch_over_once_and_keep_the_final_evaluation_apart() -> (
    None
):
    bridge = TrainingBridge(asyncio.get_running_loop(), asyncio.Queue())
    trainer = FakeTrainer(epochs=10)
    bridge.callbacks()["on_pretrain_routine_end"](trainer)
    for epoch, map50 in enumerate((0.1, 0.3, 0.2)):
        trainer.finish_epoch(bridge, epoch, map50)
    # Early stop after the third epoch: the evaluation of best.pt comes as "epoch 4" of 10,
    # with no on_train_epoch_end before it.
    trainer.epoch, trainer.metrics = 3, {"metrics/mAP50(B)": 0.3}
    bridge.callbacks()["on_fit_epoch_end"](trainer)
    await asyncio.sleep(0)  # the handed-over epochs land in the loop's queue

    got = [bridge.epochs.get_nowait() for _ in range(bridge.epochs.qsize())]
    assert [(epoch, epochs) for epoch, epochs, _ in got] == [(1, 10), (2, 10), (3, 10)]
    assert got[1][2] == {"map50": 0.3, "box_loss": 0.5, "val_box_loss": 2.0}
    assert bridge.final == {"map50": 0.3}
    assert bridge.device == "cpu"

    bridge.stop.set()
    for event in ("on_pretrain_routine_end", "on_train_epoch_start", "on_train_batch_end"):
        with pytest.raises(StopTraining):
            bridge.callbacks()[event](trainer)
