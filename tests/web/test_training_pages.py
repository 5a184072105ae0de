"""Training and the model registry in the browser's pages: the project page's training box (a
refusal inline, a started training's panel), a training's panel with its chart, its log and
Resume, and the models page (make active, download, delete with the active model's extra tick,
upload a .pt), with their JSON twins. Tasks and models are made directly in the stores: the
training job itself is tested in tests/tasks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.models import Annotation, TaskStatus
from app.domain.stores import Stores
from app.domain.training import ARCHITECTURES, KIND
from tests.contract.support import png
from tests.web.htmltree import Element, parse

PROJECT = "birds"
HTMX = {"HX-Request": "true"}
EPOCHS = [
    {"box_loss": 1.9, "cls_loss": 3.2, "dfl_loss": 1.4, "map50": 0.02, "map50_95": 0.01},
    {"box_loss": 1.6, "cls_loss": 2.7, "dfl_loss": 1.3, "map50": 0.11, "map50_95": 0.05},
    {"box_loss": 1.4, "cls_loss": 2.2, "dfl_loss": 1.2, "precision": 0.4, "map50": 0.23},
]


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def token(client: httpx.AsyncClient) -> str:
    return client.cookies["ydc_csrf"]


def pt_bytes() -> bytes:
    """What torch.save writes: a zip archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # A fixed time: writestr with a bare name stamps the current second into the bytes,
        # and two calls a second apart would then differ.
        archive.writestr(zipfile.ZipInfo("model/data.pkl", (2026, 1, 1, 0, 0, 0)), b"weights")
    return buffer.getvalue()


@pytest.fixture
async def project(app: FastAPI) -> str:
    """A project with one labelled train image and one unlabelled val image."""
    stores = stores_of(app)
    await stores.dataset.create(PROJECT, ["gull", "crow"])
    await stores.image.save_file(PROJECT, "train", "a.png", io.BytesIO(png(1)))
    await stores.image.save_file(PROJECT, "val", "b.png", io.BytesIO(png(2)))
    await stores.label.save(PROJECT, "train", "a.png", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    return PROJECT


async def label_val(app: FastAPI) -> None:
    await stores_of(app).label.save(PROJECT, "val", "b.png", [Annotation(1, 0.4, 0.4, 0.2, 0.2)])


async def add_model(
    app: FastAPI, tmp_path: Path, name: str, *, metrics: dict[str, Any] | None = None
) -> None:
    weights = tmp_path / f"{name}-best.pt"
    weights.write_bytes(pt_bytes())
    await stores_of(app).model.save(
        name, weights, "yolo11n.yaml", PROJECT, 3, metrics or {"best_map50": 0.5}
    )


async def running_training(app: FastAPI, epochs: int = 3) -> int:
    stores = stores_of(app)
    task = await stores.task.enqueue(KIND, {"base": "yolo11n.yaml", "epochs": 10}, dataset=PROJECT)
    claimed = await stores.task.claim("test-worker")
    assert claimed is not None and claimed.id == task.id
    for n in range(epochs):
        await stores.task.record_epoch(task.id, n + 1, EPOCHS[n % len(EPOCHS)])
    await stores.task.heartbeat(task.id, "test-worker", progress=epochs / 10)
    return task.id


def chart_points(panel: Element, series: str) -> list[Element]:
    return panel.find_all("circle", class_="chart-point", **{"data-series": series})


# --- the training box -----------------------------------------------------------------------


async def test_the_project_page_has_a_training_box_whose_base_list_has_the_architectures_and_models(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "gulls-v1")
    page = parse((await client.get(f"/projects/{project}")).text)
    box = page.find("section", id="training")
    form = box.find("form", class_="training-form")
    assert form.attrs["action"] == f"/projects/{project}/train"
    assert {i.attrs["name"]: i.attrs["value"] for i in form.find_all("input", type="number")} == {
        "epochs": "50",
        "imgsz": "640",
        "batch": "16",
        "patience": "50",
    }
    # The project page (rendered by pages.py) asks for the full list of bases once loaded.
    select = form.find("select", name="base")
    assert select.attrs["hx-get"] == f"/projects/{project}/train/bases"
    assert box.find("a", href=f"/projects/{project}/models").text() == "Models of this project"

    bases = parse((await client.get(select.attrs["hx-get"], headers=HTMX)).text)
    options = {o.attrs["value"]: o.text() for o in bases.find_all("option")}
    assert list(options)[: len(ARCHITECTURES)] == list(ARCHITECTURES)
    assert options["model:gulls-v1"] == "fine-tune gulls-v1"
    assert "hx-get" not in bases.find("select").attrs


async def test_a_training_the_project_cannot_do_is_refused_inside_the_box(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    data = {"csrf_token": token(client), "base": "yolo11n.yaml", "epochs": "3", "imgsz": "64"}
    response = await client.post(f"/projects/{project}/train", data=data, headers=HTMX)

    assert response.status_code == 422
    box = parse(response.text).find("section", id="training")
    assert "no labelled val images" in box.find("p", role="alert").text()
    assert box.find("input", name="epochs").attrs["value"] == "3"  # what was sent stays
    assert await stores_of(app).task.list(kinds=[KIND]) == []

    # A plain form gets the whole project page back, the message in the box.
    plain = await client.post(f"/projects/{project}/train", data=data)
    assert plain.status_code == 422
    page = parse(plain.text)
    assert page.find("h1").text() == project
    assert "no labelled val images" in page.find("p", id="training-error").text()


async def test_a_bad_number_is_refused_with_its_field_marked(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    await label_val(app)
    data = {"csrf_token": token(client), "imgsz": "100"}
    response = await client.post(f"/projects/{project}/train", data=data, headers=HTMX)

    assert response.status_code == 422
    box = parse(response.text)
    assert "multiple of 32" in box.find("p", role="alert").text()
    assert box.find("input", name="imgsz").attrs["aria-invalid"] == "true"


async def test_starting_a_training_queues_it_and_puts_its_panel_in_the_box(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    await label_val(app)
    data = {
        "csrf_token": token(client),
        "base": "yolov8n.yaml",
        "epochs": "3",
        "imgsz": "64",
        "batch": "2",
        "patience": "",
    }
    response = await client.post(f"/projects/{project}/train", data=data, headers=HTMX)

    assert response.status_code == 200
    [task] = await stores_of(app).task.list(kinds=[KIND])
    assert task.status == TaskStatus.QUEUED
    assert task.dataset == project
    assert task.params == {
        "base": "yolov8n.yaml",
        "epochs": 3,
        "imgsz": 64,
        "batch": 2,
        "patience": 50,
    }
    box = parse(response.text).find("section", id="training")
    panel = box.find("article", id=f"task-{task.id}")
    assert panel.attrs["hx-get"] == f"/tasks/{task.id}/training-panel"
    assert panel.find("p", class_="training-epoch").text() == "Training log"  # queued: no chart
    assert panel.find_all("svg") == []
    assert (
        box.find("select", name="base").find("option", value="yolov8n.yaml").attrs.get("selected")
        is not None
    )

    plain = await client.post(f"/projects/{project}/train", data=data)
    assert plain.status_code == 303
    [newer, _] = await stores_of(app).task.list(kinds=[KIND])
    assert plain.headers["location"] == f"/tasks/{newer.id}"


# --- a training's panel, log and resume --------------------------------------------------------


async def test_a_running_training_panel_counts_epochs_and_charts_them(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    task_id = await running_training(app, epochs=3)

    response = await client.get(f"/tasks/{task_id}/training-panel", headers=HTMX)

    assert response.headers["cache-control"] == "no-store"
    panel = parse(response.text).find("article", id=f"task-{task_id}")
    assert panel.attrs["hx-trigger"] == "every 1s"
    assert panel.attrs["hx-get"] == f"/tasks/{task_id}/training-panel"
    assert panel.find("p", class_="training-epoch").text() == "Epoch 3 of 10 done · Training log"
    assert panel.find("progress").attrs["value"] == "30"
    charts = panel.find_all("svg", class_="training-chart")
    assert [c.attrs["data-plot"] for c in charts] == ["loss", "map"]
    assert all(c.attrs["role"] == "img" and c.find_all("title")[0].text() for c in charts)
    assert len(chart_points(panel, "loss")) == 3
    assert len(chart_points(panel, "mAP50")) == 3
    assert len(chart_points(panel, "mAP50-95")) == 2  # the third epoch has none
    assert panel.find("a", href=f"/tasks/{task_id}/log").text() == "Training log"
    assert panel.find_all("form", class_="training-resume") == []


async def test_the_task_page_of_a_training_loads_its_chart_once(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    task_id = await running_training(app, epochs=1)
    page = parse((await client.get(f"/tasks/{task_id}")).text)
    panel = page.find("article", id=f"task-{task_id}")
    loader = panel.find("p", class_="training-epoch")
    assert loader.attrs["hx-get"] == f"/tasks/{task_id}/training-panel"
    assert loader.attrs["hx-trigger"] == "load"
    assert panel.attrs["hx-get"] == f"/tasks/{task_id}/training-panel"


async def test_a_succeeded_training_names_its_model_and_how_it_went(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    stores = stores_of(app)
    task_id = await running_training(app, epochs=3)
    await add_model(app, tmp_path, "birds-t1")
    result = {
        "model": "birds-t1",
        "epochs_completed": 3,
        "best_map50": 0.234,
        "final": EPOCHS[2],
        "duration_s": 75.0,
        "device": "cuda:0",
    }
    await stores.task.finish(task_id, "test-worker", status="succeeded", result=result)

    panel = parse((await client.get(f"/tasks/{task_id}/training-panel")).text)

    outcome = panel.find("p", class_="training-outcome")
    assert outcome.find("a").attrs["href"] == f"/projects/{project}/models#model-birds-t1"
    text = outcome.text()
    assert "best mAP50 0.234" in text and "1 min 15 s" in text and "cuda:0" in text
    assert "hx-trigger" not in panel.find("article").attrs
    assert len(chart_points(panel, "loss")) == 3


async def test_a_cancelled_training_offers_resume_which_queues_a_continuation(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    stores = stores_of(app)
    task_id = await running_training(app, epochs=2)
    await stores.task.finish(task_id, "test-worker", status="cancelled")

    panel = parse((await client.get(f"/tasks/{task_id}/training-panel")).text)
    form = panel.find("form", class_="training-resume")
    assert form.attrs["action"] == f"/tasks/{task_id}/resume"

    response = await client.post(form.attrs["action"], data={"csrf_token": token(client)})

    newest = (await stores.task.list(kinds=[KIND]))[0]
    assert response.status_code == 303
    assert response.headers["location"] == f"/tasks/{newest.id}"
    assert newest.params["resume_of"] == task_id
    assert newest.params["epochs"] == 10
    htmx = await client.post(form.attrs["action"], headers=HTMX)
    assert htmx.headers["HX-Redirect"].startswith("/tasks/")


async def test_a_training_stopped_before_its_first_epoch_offers_a_new_one_not_resume(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    task = await stores_of(app).task.enqueue(KIND, {"epochs": 5}, dataset=PROJECT)
    await stores_of(app).task.request_cancel(task.id)

    panel = parse((await client.get(f"/tasks/{task.id}/training-panel")).text)

    assert panel.find_all("form", class_="training-resume") == []
    assert panel.find("a", href=f"/projects/{PROJECT}#training").text() == "start a new training"
    assert panel.find_all("svg") == []


async def test_the_log_page_shows_the_tail_of_the_log_and_refreshes_while_running(
    app: FastAPI, client: httpx.AsyncClient, project: str, settings: Settings
) -> None:
    task_id = await running_training(app, epochs=1)
    empty = parse((await client.get(f"/tasks/{task_id}/log")).text)
    assert "No log yet" in empty.find("section", id="training-log").text()

    log = settings.data_dir / "training" / f"task-{task_id}" / "train.log"
    log.parent.mkdir(parents=True)
    lines = [f"line {n}" for n in range(600)] + ["  1/3  0.5G  1.2\r  2/3  0.5G  1.1 <done>"]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")

    page = await client.get(f"/tasks/{task_id}/log")
    assert page.status_code == 200
    section = parse(page.text).find("section", id="training-log")
    assert section.attrs["hx-trigger"] == "every 2s"
    shown = section.find("pre").text()
    assert "line 100" not in shown and "line 101" in shown.split("\n")[0]
    assert shown.endswith("2/3 0.5G 1.1 <done>")  # the redrawn line as a terminal shows it
    assert "The last 500 of 601 lines" in section.text()
    fragment = await client.get(f"/tasks/{task_id}/log", headers=HTMX)
    assert "<html" not in fragment.text and "line 599" in fragment.text


async def test_the_log_page_of_a_task_that_is_no_training_is_not_found(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    export = await stores_of(app).task.enqueue("export", {}, dataset=PROJECT)
    assert (await client.get(f"/tasks/{export.id}/log")).status_code == 404
    assert (await client.get("/tasks/999/log")).status_code == 404


# --- the models page ---------------------------------------------------------------------------


async def test_the_models_page_lists_the_models_newest_first_with_their_metrics(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "old")
    metrics = {
        "best_map50": 0.61,
        "final": {"precision": 0.7, "recall": 0.55, "map50_95": 0.42},
        "snapshot": {"images": {"train": 40, "val": 10}, "boxes": 93},
        "duration_s": 3725.0,
        "device": "cpu",
        "task_id": 7,
    }
    await add_model(app, tmp_path, "new", metrics=metrics)
    await stores_of(app).model.set_active("old")

    page = parse((await client.get(f"/projects/{project}/models")).text)

    cards = page.find_all("article", class_="model-card")
    assert [c.attrs["id"] for c in cards] == ["model-new", "model-old"]
    new, old = cards
    metrics_shown = {
        d.find("dt").text(): d.find("dd").text() for d in new.find("dl").find_all("div")
    }
    assert metrics_shown == {
        "best mAP50": "0.610",
        "mAP50-95": "0.420",
        "precision": "0.700",
        "recall": "0.550",
        "epochs": "3",
    }
    trained_on = new.find("p", class_="model-snapshot").text()
    assert "40 train images" in trained_on and "10 val images (93 boxes)" in trained_on
    assert "1 h 02 min on cpu" in new.find("p", class_="model-meta").text()
    assert old.find("span", class_="model-badge").text() == "active"
    assert new.find_all("span", class_="model-badge") == []
    # Already active: no "Make active" (evaluating and exporting it still are).
    assert [
        f.attrs["action"] for f in old.find_all("form") if "/activate" in f.attrs["action"]
    ] == []
    assert [f.attrs["action"] for f in new.find_all("form") if "/activate" in f.attrs["action"]]
    assert (
        page.find("nav", class_="crumbs").find("a", href=f"/projects/{project}").text() == project
    )
    fragment = await client.get(f"/projects/{project}/models", headers=HTMX)
    assert "<html" not in fragment.text and 'id="models"' in fragment.text


async def test_make_active_moves_the_mark(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "one")
    await add_model(app, tmp_path, "two")
    await stores_of(app).model.set_active("one")

    response = await client.post("/models/two/activate", headers=HTMX)

    assert response.status_code == 200
    listed = parse(response.text).find("section", id="models")
    assert listed.find("article", id="model-two").attrs["class"].split() == [
        "card",
        "model-card",
        "model-active",
    ]
    active = await stores_of(app).model.get_active(dataset=PROJECT)
    assert active is not None and active.name == "two"
    plain = await client.post("/models/one/activate", data={"csrf_token": token(client)})
    assert plain.status_code == 303 and plain.headers["location"] == f"/projects/{project}/models"


async def test_download_gives_the_weights_file(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "one")
    for url in ("/models/one/weights", "/api/v1/models/one/weights"):
        response = await client.get(url)
        assert response.status_code == 200
        assert response.content == pt_bytes()
        assert 'filename="one.pt"' in response.headers["content-disposition"]
    assert (await client.get("/models/nope/weights")).status_code == 404


async def test_deleting_a_model_asks_first_and_the_active_one_needs_its_tick(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    stores = stores_of(app)
    await add_model(app, tmp_path, "spare")
    await add_model(app, tmp_path, "main")
    await stores.model.set_active("main")
    folder = (await stores.model.load("main")).parent

    confirm = parse((await client.get("/models/main/delete")).text)
    section = confirm.find("section", id="confirm-delete-model")
    assert "main-best.pt" in section.find("ul", class_="usage").text()
    assert section.find("input", name="active").attrs["type"] == "checkbox"
    fragment = await client.get("/models/main/delete", headers=HTMX)
    assert "<html" not in fragment.text and 'id="confirm-delete-model"' in fragment.text
    assert "HX-Request" in fragment.headers["vary"]
    spare_confirm = parse((await client.get("/models/spare/delete")).text)
    assert spare_confirm.find_all("input", name="active") == []

    untick = await client.post(
        "/models/main/delete", data={"csrf_token": token(client), "confirm": "yes"}
    )
    assert untick.status_code == 422
    assert "yes, delete the active model" in parse(untick.text).find("p", role="alert").text()
    assert await stores.model.get("main") is not None

    ticked = await client.post(
        "/models/main/delete",
        data={"csrf_token": token(client), "confirm": "yes", "active": "yes"},
    )
    assert ticked.status_code == 303
    assert ticked.headers["location"] == f"/projects/{project}/models"
    assert await stores.model.get("main") is None
    assert not folder.exists()

    spare = await client.post(
        "/models/spare/delete", data={"csrf_token": token(client), "confirm": "yes"}
    )
    assert spare.status_code == 303
    assert await stores.model.list(dataset=PROJECT) == []


async def test_uploading_a_pt_adds_a_model_and_anything_else_is_refused(
    app: FastAPI, client: httpx.AsyncClient, project: str
) -> None:
    stores = stores_of(app)
    url = f"/projects/{project}/models"
    data = {"csrf_token": token(client), "name": "from-colab"}

    ok = await client.post(url, data=data, files={"file": ("best.pt", pt_bytes())})
    assert ok.status_code == 303 and ok.headers["location"] == url
    model = await stores.model.get("from-colab")
    assert model is not None and model.base_model == "uploaded"
    assert model.path.read_bytes() == pt_bytes()

    for filename, payload, reason in [
        ("weights.onnx", pt_bytes(), "not a .pt file"),
        ("fake.pt", b"\x80\x02 an old pickle", "not a PyTorch weights file"),
    ]:
        data["name"] = "refused"
        refused = await client.post(
            url, data=data, files={"file": (filename, payload)}, headers=HTMX
        )
        assert refused.status_code == 422
        form = parse(refused.text).find("form", id="model-upload")
        assert reason in form.find("p", role="alert").text()
        assert form.find("input", name="name").attrs["value"] == "refused"
    plain = await client.post(url, data=data, files={"file": ("fake.pt", b"nope")})
    assert plain.status_code == 422 and "<html" in plain.text
    assert [m.name for m in await stores.model.list(dataset=PROJECT)] == ["from-colab"]


# --- the API ---------------------------------------------------------------------------------


async def test_the_models_api_lists_activates_uploads_and_deletes(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "one")
    uploaded = await client.post(
        f"/api/v1/projects/{project}/models",
        data={"name": "two"},
        files={"file": ("two.pt", pt_bytes())},
    )
    assert uploaded.status_code == 201
    assert uploaded.json()["base_model"] == "uploaded"
    bad = await client.post(f"/api/v1/projects/{project}/models", files={"file": ("x.pt", b"nope")})
    assert bad.status_code == 422 and "PyTorch" in bad.json()["detail"]

    listed = (await client.get(f"/api/v1/projects/{project}/models")).json()
    assert [(m["name"], m["active"]) for m in listed] == [("two", False), ("one", False)]
    assert listed[1]["best_map50"] == 0.5
    assert listed[1]["weights_url"] == "/api/v1/models/one/weights"

    activated = await client.post("/api/v1/models/one/activate")
    assert activated.status_code == 200 and activated.json()["active"] is True

    refused = await client.delete("/api/v1/models/one")
    assert refused.status_code == 409
    assert (await client.delete("/api/v1/models/one?confirm_active=true")).status_code == 204
    assert (await client.delete("/api/v1/models/two")).status_code == 204
    assert (await client.get(f"/api/v1/projects/{project}/models")).json() == []
    assert (await client.delete("/api/v1/models/two")).status_code == 404
    assert (await client.get("/api/v1/projects/nope/models")).status_code == 404
