"""The training job: Ultralytics trains a YOLO model on a frozen snapshot of a project, in a
thread of the task worker, and the model it makes joins the project's registry.

The one module that imports torch and Ultralytics, and only inside functions: the server and
the CLI load the job table without them. Ultralytics runs offline (environment, fonts and
settings under ``<data dir>/ultralytics``, set before it is first imported).

Folders: ``training/task-<id>/`` holds the snapshot (``dataset/``, ``snapshot.json``), the log
(``train.log``) and Ultralytics' run (``run/``, its ``weights/last.pt`` and ``best.pt``). A
resumed training continues the run of the training it resumes, in that training's folder (its
``last.pt`` names the folder and the snapshot), and keeps its own log.

Cancel stops the training between two batches by raising from a callback: the weights of the
last finished epoch stay in ``last.pt`` with the optimizer's state, so a resume goes on from
there. Ultralytics' own graceful stop (``trainer.stop``) would run its final evaluation, which
strips the optimizer from ``last.pt``: a resume from it silently starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.domain.errors import AlreadyExists, Cancelled, Invalid, NotFound
from app.domain.stores import Stores
from app.domain.training import VERSION_TRAINED_ON, TrainingParams, epoch_metrics, params_of
from app.domain.versions import READY
from app.services.system import disk_full_guard, disk_refusal, peak_memory_of_this_process
from app.services.training import training_epochs
from app.tasks.context import TaskContext

log = logging.getLogger(__name__)

# Ultralytics' integrations that phone home; all off.
INTEGRATIONS = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # else every training asks the network for Arial.ttf
POLL_S = 0.2  # how often the job looks at the epochs that came in and at a cancel
TRAINING_PROGRESS_CAP = 0.99  # progress stays below 1 until the model is registered
LOG_NAME = "train.log"
SNAPSHOT_NAME = "snapshot.json"
RUN_NAME = "run"
ULTRALYTICS_LOGGER = "ultralytics"  # the name of Ultralytics' LOGGER
MAX_CHAIN = 50  # resumes of resumes followed at most
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def training_folder(data_dir: Path, task_id: int) -> Path:
    """Where a training task keeps its snapshot, its log and (unless it resumed) its run."""
    return data_dir / "training" / f"task-{task_id}"


# --- offline Ultralytics ---------------------------------------------------------------------


def ultralytics_home(data_dir: Path) -> Path:
    """Ultralytics' config, settings, fonts and default folders: inside the data dir."""
    return data_dir / "ultralytics"


def offline_environment(home: Path) -> dict[str, str]:
    """The variables that keep Ultralytics (and matplotlib) off the network and out of $HOME."""
    return {
        "YOLO_CONFIG_DIR": str(home / "config"),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "MPLCONFIGDIR": str(home / "matplotlib"),
    }


def _copy_fonts(config_dir: Path) -> None:
    # Found, not imported: matplotlib's DejaVuSans stands in for Arial.
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return
    dejavu = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    for name in FONTS:
        if not (fonts / name).is_file() and dejavu.is_file():
            shutil.copyfile(dejavu, fonts / name)


def prepare_ultralytics(data_dir: Path) -> None:
    """Set Ultralytics up offline, then import it. Blocking (the import takes seconds)."""
    home = ultralytics_home(data_dir)
    env = offline_environment(home)
    for folder in (env["YOLO_CONFIG_DIR"], env["MPLCONFIGDIR"]):
        Path(folder).mkdir(parents=True, exist_ok=True)
    _copy_fonts(Path(env["YOLO_CONFIG_DIR"]))
    os.environ.update(env)  # before the first import: Ultralytics reads them at import

    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    if Path(USER_CONFIG_DIR) != Path(env["YOLO_CONFIG_DIR"]):
        _copy_fonts(Path(USER_CONFIG_DIR))  # imported earlier by someone else: its fonts too
    wanted: dict[str, Any] = dict.fromkeys(INTEGRATIONS, False) | {
        "runs_dir": str(home / "runs"),
        "datasets_dir": str(home / "datasets"),
        "weights_dir": str(home / "weights"),
    }
    if any(SETTINGS.get(key) != value for key, value in wanted.items()):
        SETTINGS.update(wanted)
    _restore_pillow_open()


def _restore_pillow_open() -> None:
    """Undo Ultralytics' process-wide ``PIL.Image.open`` patch: on the first file Pillow cannot
    identify it pip-installs ``pi-heif`` (a network attempt, offline an ImportError where "not
    an image" was meant), which every later image check in this process would go through."""
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original


# --- the training thread ---------------------------------------------------------------------


class StopTraining(Exception):
    """Raised from a callback to stop the training between two batches."""


@dataclass
class TrainingBridge:
    """Between the training thread (Ultralytics' callbacks) and the job's event loop."""

    loop: asyncio.AbstractEventLoop
    epochs: asyncio.Queue[tuple[int, int, dict[str, float]]]
    stop: threading.Event = field(default_factory=threading.Event)
    final: dict[str, float] = field(default_factory=dict)  # the evaluation of best.pt
    device: str = ""  # where it trains, as torch names it (cpu, cuda:0)
    # torch's peaks on the GPU it trained on (bytes): what tensors held, what its caching
    # allocator took from the driver. Empty on the CPU.
    gpu_peak: dict[str, int] = field(default_factory=dict)
    _training_epoch: int | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_pretrain_routine_end": self._check_stop,
            "on_train_epoch_start": self._check_stop,
            "on_train_batch_end": self._check_stop,
            "on_train_epoch_end": self._epoch_trained,
            "on_fit_epoch_end": self._fit_epoch_end,
        }

    def _check_stop(self, trainer: Any) -> None:
        if not self.device:
            self.device = str(trainer.device)
        if self.stop.is_set():
            raise StopTraining

    def _epoch_trained(self, trainer: Any) -> None:
        self._training_epoch = trainer.epoch

    def _fit_epoch_end(self, trainer: Any) -> None:
        metrics = dict(trainer.metrics or {})
        # An epoch's own call follows its on_train_epoch_end; the one after the final evaluation
        # of best.pt (epoch + 1, also after an early stop) does not (its train losses are the
        # last epoch's: left out).
        if self._training_epoch != trainer.epoch:
            self.final = epoch_metrics(metrics, {})
            return
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
        figures = epoch_metrics(metrics, losses)
        self._training_epoch = None
        item = (trainer.epoch + 1, trainer.epochs, figures)
        self.loop.call_soon_threadsafe(self.epochs.put_nowait, item)
        _epoch_line(trainer.epoch + 1, trainer.epochs, figures)


def _epoch_line(epoch: int, epochs: int, figures: dict[str, float]) -> None:
    shown = ", ".join(f"{key} {value:.4g}" for key, value in figures.items())
    logging.getLogger(ULTRALYTICS_LOGGER).info(f"ydc: epoch {epoch} of {epochs}: {shown}")


@dataclass
class _Source:
    """What a training starts from: a snapshot, or an earlier run's ``last.pt``."""

    run: Path
    snapshot: dict[str, Any]
    data_yaml: Path | None = None
    weights: Path | None = None
    resumes: int | None = None


def _train(bridge: TrainingBridge, params: TrainingParams, source: _Source) -> bool:
    """Build the model and train it (blocking): from scratch, from a registry model's weights,
    or (a resume) on from a ``last.pt``. True when a cancel stopped it."""
    import torch
    from ultralytics import YOLO

    on_gpu = torch.cuda.is_available()
    device: int | str = 0 if on_gpu else "cpu"
    # Mixed precision on a GPU in bfloat16 where it has it: amp=True would first run
    # Ultralytics' AMP check, which downloads yolo26n.pt. A resume keeps its run's choice.
    amp: bool | str = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else False
    weights, run = source.weights, source.run
    if source.resumes is not None:
        assert weights is not None
        model = YOLO(str(weights))
        ckpt = model.ckpt or {}
        if ckpt.get("epoch", -1) < 0 or ckpt.get("optimizer") is None:
            # Ultralytics would warn and start a new training from these weights.
            raise Invalid(
                f"{weights} holds final weights, not a training to continue: it ran to its end."
            )
        # The rest (epochs, image size, batch, ...) comes from the checkpoint. The folders are
        # given again in case the data dir has moved since.
        arguments: dict[str, Any] = {
            "resume": True,
            "device": device,
            "workers": 0,
            "save_dir": str(run),
            "data": str(source.data_yaml),
        }
    else:
        model = YOLO(str(weights)) if weights is not None else YOLO(params.base)
        arguments = {
            "data": str(source.data_yaml),
            "epochs": params.epochs,
            "imgsz": params.imgsz,
            "batch": params.batch,
            "patience": params.patience,
            "device": device,
            "amp": amp,
            "workers": 0,
            "pretrained": weights is not None,
            "project": str(run.parent),
            "name": run.name,
            "exist_ok": True,
            "plots": False,
            "verbose": False,
        }
    for event, callback in bridge.callbacks().items():
        model.add_callback(event, callback)
    try:
        model.train(**arguments)
    except StopTraining:
        return True
    except Exception:
        if bridge.stop.is_set():
            return True  # stopped while it failed: the cancel wins
        raise
    finally:
        if on_gpu:
            bridge.gpu_peak = {
                "allocated": int(torch.cuda.max_memory_allocated()),
                "reserved": int(torch.cuda.max_memory_reserved()),
            }
    return False


# --- the job ---------------------------------------------------------------------------------


def _link_version(version: Path, dataset: Path, classes: list[str], images: dict[str, int]) -> Path:
    """Hard links of the version's images and label files under ``dataset`` (a copy where
    links cannot be made) and a ``data.yaml`` whose ``path`` is that folder: Ultralytics writes
    its label caches beside the labels it reads, which must not land in the version itself."""
    for source in sorted(version.rglob("*")):
        relative = source.relative_to(version)
        if relative.parts[0] not in ("images", "labels") or not source.is_file():
            continue
        target = dataset / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    described = {
        "path": str(dataset),
        **{split: f"images/{split}" for split, n in images.items() if n},
        "nc": len(classes),
        "names": dict(enumerate(classes)),
    }
    data_yaml = dataset / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(described, sort_keys=False, allow_unicode=True))
    return data_yaml


async def _from_version(
    ctx: TaskContext, stores: Stores, name: str, folder: Path
) -> tuple[Path, dict[str, Any]]:
    """The dataset of a training on a version: the version's files linked into the training's
    folder. ``Invalid`` when the version is gone or not ready."""
    version = await stores.version.get(name)
    if version is None or version.status != READY:
        raise Invalid(f"Dataset version {name!r} is gone or not ready: choose another.")
    await ctx.progress(0.0, f"linking version {version.name}")
    images = {k: int(v) for k, v in (version.counts.get("images") or {}).items()}
    boxes = sum(sum(per.values()) for per in (version.counts.get("boxes") or {}).values())
    data_yaml = await asyncio.to_thread(
        _link_version, version.path, folder / "dataset", version.classes, images
    )
    snapshot = {
        "version": version.name,
        "images": images,
        "boxes": boxes,
        "classes": version.classes,
    }
    return data_yaml, snapshot


async def _fresh(ctx: TaskContext, stores: Stores, params: TrainingParams, folder: Path) -> _Source:
    project = ctx.task.dataset
    assert project is not None
    if params.version is not None:
        data_yaml, snapshot = await _from_version(ctx, stores, params.version, folder)
        await asyncio.to_thread(
            (folder / SNAPSHOT_NAME).write_text, json.dumps(snapshot, indent=1), encoding="utf-8"
        )
        weights = await _base_weights(stores, params)
        return _Source(folder / RUN_NAME, snapshot, data_yaml=data_yaml, weights=weights)
    await ctx.progress(0.0, "freezing the dataset")
    snap = await stores.dataset.snapshot(project, folder / "dataset")
    for split, role in (("train", "learn from"), ("val", "measure it on")):
        if not snap.images.get(split):  # labels removed since it was queued
            raise Invalid(
                f"Project {project!r} has no labelled {split} images to {role} any more: "
                f"label some {split} images first."
            )
    snapshot = snap.to_dict()
    await asyncio.to_thread(
        (folder / SNAPSHOT_NAME).write_text, json.dumps(snapshot, indent=1), encoding="utf-8"
    )
    weights = await _base_weights(stores, params)
    return _Source(folder / RUN_NAME, snapshot, data_yaml=snap.data_yaml, weights=weights)


async def _base_weights(stores: Stores, params: TrainingParams) -> Path | None:
    if params.base_model is None:
        return None
    try:
        return await stores.model.load(params.base_model)
    except NotFound as error:
        raise Invalid(f"Cannot start from model {params.base_model!r}: {error}") from None


async def _resumed(stores: Stores, resume_of: int) -> _Source:
    """The run a resume continues: that of the first training of the chain (each resume
    writes into the run it continues)."""
    first = resume_of
    for _ in range(MAX_CHAIN):
        try:
            earlier = (await stores.task.get(first)).params.get("resume_of")
        except NotFound:
            break
        if not earlier:
            break
        first = int(earlier)
    root = training_folder(stores.data_dir, first)
    last = root / RUN_NAME / "weights" / "last.pt"
    if not await asyncio.to_thread(last.is_file):
        raise Invalid(
            f"Training {resume_of} left no weights to resume from ({last} is gone): "
            "start a new training."
        )
    try:
        text = await asyncio.to_thread((root / SNAPSHOT_NAME).read_text, encoding="utf-8")
        snapshot = json.loads(text)
    except (OSError, ValueError):
        snapshot = {}
    await backfill_epochs(stores, resume_of, root / RUN_NAME / "results.csv")
    data_yaml = root / "dataset" / "data.yaml"
    if not await asyncio.to_thread(data_yaml.is_file):
        raise Invalid(
            f"The dataset snapshot training {resume_of} learnt from is gone ({data_yaml}): "
            "start a new training."
        )
    return _Source(root / RUN_NAME, snapshot, data_yaml=data_yaml, weights=last, resumes=resume_of)


async def backfill_epochs(stores: Stores, task_id: int, results_csv: Path) -> list[int]:
    """Record under ``task_id`` the epochs of its run's ``results.csv`` that its chain of
    trainings lacks: a worker killed between Ultralytics saving an epoch and ydc recording it
    would leave a hole in the chart of the resumed training. Returns the epochs added."""
    try:
        text = await asyncio.to_thread(results_csv.read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    known = {row["epoch"] for row in await training_epochs(stores, task_id)}
    added: list[int] = []
    for row in csv.DictReader(io.StringIO(text)):
        values = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            epoch = int(float(values.get("epoch", "")))
        except ValueError:
            continue
        if epoch < 1 or epoch in known:
            continue
        losses = {k: v for k, v in values.items() if k.startswith("train/")}
        figures = epoch_metrics(values, losses)
        if figures:
            await stores.task.record_epoch(task_id, epoch, figures)
            known.add(epoch)
            added.append(epoch)
    return added


class _LogFile(logging.FileHandler):
    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


@contextlib.contextmanager
def _training_log(path: Path, first_lines: list[str]) -> Iterator[None]:
    """Ultralytics' log (and ours) into ``path`` while the training runs."""
    with path.open("a", encoding="utf-8") as out:
        out.writelines(f"{line}\n" for line in first_lines)
    handler = _LogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger(ULTRALYTICS_LOGGER)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


async def train_project(ctx: TaskContext, stores: Stores) -> dict[str, Any]:
    """Train a YOLO model on a snapshot of the task's project (or resume an earlier training
    from its last weights), record each epoch's figures as they come, and register the model
    as ``<project>-<task id>``. A cancel keeps the last finished epoch's weights to resume."""
    params = params_of(ctx.task.params)
    project = ctx.task.dataset
    if project is None:
        raise Invalid("The training task names no project.")
    # The disk may have filled since it was queued: refused before the snapshot is copied.
    refusal = await asyncio.to_thread(
        disk_refusal, stores.data_dir, stores.disk_reserve, outcome="The training did not start."
    )
    if refusal is not None:
        raise refusal
    with disk_full_guard(stores.data_dir, stores.disk_reserve, outcome="The training stopped."):
        return await _train_project(ctx, stores, params, project)


async def _train_project(
    ctx: TaskContext, stores: Stores, params: TrainingParams, project: str
) -> dict[str, Any]:
    folder = training_folder(stores.data_dir, ctx.task.id)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    started = time.monotonic()
    if params.resume_of is None:
        source = await _fresh(ctx, stores, params, folder)
    else:
        source = await _resumed(stores, params.resume_of)
    first_lines = [
        f"ydc: training task {ctx.task.id} of project {project!r}: {params.to_params()}",
        *([f"ydc: on dataset version {params.version!r}"] if params.version else []),
        f"ydc: snapshot {json.dumps(source.snapshot)}",
        f"ydc: run folder {source.run}"
        + (f" (continues training {source.resumes})" if source.resumes else ""),
    ]
    await ctx.progress(0.0, "loading Ultralytics")
    await asyncio.to_thread(prepare_ultralytics, stores.data_dir)

    bridge = TrainingBridge(asyncio.get_running_loop(), asyncio.Queue())
    log_file = folder / LOG_NAME
    with _training_log(log_file, first_lines):
        stopped = await _follow(ctx, stores, bridge, params, source)
    if stopped:
        last = source.run / "weights" / "last.pt"
        await _append(log_file, f"ydc: cancelled; the last finished epoch's weights: {last}")
        raise Cancelled(f"Task {ctx.task.id} was cancelled.")
    # A cancel that came during the final evaluation is too late: the training has ended (and
    # its last.pt is final, no longer resumable), so its model is kept.
    with contextlib.suppress(Cancelled):
        await ctx.progress(TRAINING_PROGRESS_CAP, "registering the model")
    result = await _register(ctx, stores, params, source, bridge, started, folder)
    await _append(log_file, f"ydc: registered model {result['model']!r}")
    return result


async def _append(path: Path, line: str) -> None:
    def write() -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    await asyncio.to_thread(write)


async def _follow(
    ctx: TaskContext,
    stores: Stores,
    bridge: TrainingBridge,
    params: TrainingParams,
    source: _Source,
) -> bool:
    """Run the training thread; meanwhile record each epoch that comes in and report it, and
    pass a cancel on to the thread. True when it stopped for a cancel."""
    await ctx.progress(0.0, "starting the training")
    training = asyncio.ensure_future(asyncio.to_thread(_train, bridge, params, source))
    again: tuple[float, str] | None = None
    try:
        while True:
            done, _ = await asyncio.wait({training}, timeout=POLL_S)
            latest = None
            while not bridge.epochs.empty():
                epoch, epochs, figures = bridge.epochs.get_nowait()
                await stores.task.record_epoch(ctx.task.id, epoch, figures)
                latest = (min(TRAINING_PROGRESS_CAP, epoch / epochs), f"epoch {epoch} of {epochs}")
            # Each report goes twice, a round apart: one made right after a heartbeat is dropped.
            report, again = latest or again, latest
            try:
                if report is not None:
                    await ctx.progress(*report)
                ctx.check_cancelled()
            except Cancelled:
                bridge.stop.set()
            if done:
                return training.result()
    finally:
        bridge.stop.set()  # the job is leaving (an error, SIGTERM): the thread stops too


def _model_name(project: str, task_id: int, attempt: int) -> str:
    suffix = f"-{task_id}" + (f"-{attempt}" if attempt else "")
    return project.lower()[: 64 - len(suffix)] + suffix


async def _register(
    ctx: TaskContext,
    stores: Stores,
    params: TrainingParams,
    source: _Source,
    bridge: TrainingBridge,
    started: float,
    folder: Path,
) -> dict[str, Any]:
    project = ctx.task.dataset
    assert project is not None
    weights = source.run / "weights"
    best, last = weights / "best.pt", weights / "last.pt"
    if not await asyncio.to_thread(best.is_file):
        best = last
    epochs = await training_epochs(stores, ctx.task.id)
    if not epochs:
        raise Invalid("The training ended without finishing an epoch.")
    maps = [row["map50"] for row in epochs if "map50" in row]
    final = {k: v for k, v in epochs[-1].items() if k != "epoch"}
    duration = round(time.monotonic() - started + await _earlier_seconds(stores, params), 1)
    device = bridge.device or "cpu"
    resources = _peak_resources(bridge)
    metrics: dict[str, Any] = {
        "epochs": epochs,
        "best_map50": max(maps) if maps else None,
        "final": final,
        "best_eval": bridge.final,
        "args": params.to_params(),
        "duration_s": duration,
        "device": device,
        "snapshot": source.snapshot,
        "task_id": ctx.task.id,
        **resources,
    }
    for attempt in range(10):
        name = _model_name(project, ctx.task.id, attempt)
        try:
            await stores.model.save(
                name,
                best,
                params.base,
                project,
                len(epochs),
                metrics,
                last_weights=last if last != best else None,
                task_id=ctx.task.id,
                trained_on=_trained_on(params, source),
            )
            break
        except AlreadyExists:
            continue
    else:
        raise AlreadyExists(f"No free model name for training {ctx.task.id} in {project!r}.")
    return {
        "model": name,
        "epochs_completed": len(epochs),
        "best_map50": metrics["best_map50"],
        "final": final,
        "snapshot": source.snapshot,
        "duration_s": duration,
        "device": device,
        **resources,
        "run": stores_relative(stores.data_dir, source.run),
        "log": stores_relative(stores.data_dir, folder / LOG_NAME),
        **({"resumed": source.resumes} if source.resumes else {}),
    }


def _trained_on(params: TrainingParams, source: _Source) -> str:
    """``version:<name>`` for a training on a dataset version, else the snapshot's JSON."""
    version = source.snapshot.get("version") or params.version
    if version:
        return f"{VERSION_TRAINED_ON}{version}"
    return json.dumps(source.snapshot)


def _peak_resources(bridge: TrainingBridge) -> dict[str, int | None]:
    """The peak memory of this training, whose worker process runs nothing else and loads its
    batches itself (``workers=0``: no dataloader processes): ``peak_ram_bytes`` the worker's
    peak resident memory (VmHWM: Python, torch, Ultralytics, the model, the batches, the
    snapshot's copying), and on a GPU ``peak_gpu_bytes`` (``torch.cuda.max_memory_allocated``:
    what tensors held) and ``peak_gpu_reserved_bytes`` (``max_memory_reserved``: what torch's
    caching allocator took from the card); ``None`` on the CPU."""
    return {
        "peak_ram_bytes": peak_memory_of_this_process(),
        "peak_gpu_bytes": bridge.gpu_peak.get("allocated"),
        "peak_gpu_reserved_bytes": bridge.gpu_peak.get("reserved"),
    }


async def _earlier_seconds(stores: Stores, params: TrainingParams) -> float:
    """The time the trainings this one resumes ran (each resume continues the one before)."""
    seconds = 0.0
    earlier = params.resume_of
    for _ in range(MAX_CHAIN):
        if not earlier:
            break
        try:
            task = await stores.task.get(int(earlier))
        except NotFound:
            break
        if task.started_at is not None and task.finished_at is not None:
            seconds += max(0.0, task.finished_at - task.started_at)
        earlier = task.params.get("resume_of")
    return seconds


def stores_relative(data_dir: Path, path: Path) -> str:
    """``path`` relative to the data dir, as the task result shows it."""
    return path.relative_to(data_dir).as_posix()


__all__ = [
    "StopTraining",
    "TrainingBridge",
    "backfill_epochs",
    "offline_environment",
    "prepare_ultralytics",
    "train_project",
    "training_folder",
]
