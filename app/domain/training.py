"""Training, pure: the settings a person may choose (checked before a task is queued), the base
architectures that ship with Ultralytics, and what one epoch's metrics mean.

No torch or Ultralytics here: the worker (``app.tasks.training``) reads these settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.domain.errors import Invalid

# Architecture YAMLs inside the Ultralytics package: built from scratch, nothing downloaded.
ARCHITECTURES = (
    "yolo11n.yaml",
    "yolo11s.yaml",
    "yolo11m.yaml",
    "yolov8n.yaml",
    "yolov8s.yaml",
    "yolov8m.yaml",
)
MODEL_PREFIX = "model:"  # a base that is a model of the registry: fine-tuned from its weights
IMAGE_SIZES = (32, 4096)
MAX_EPOCHS = 1000
MAX_BATCH = 512
KIND = "train"
VERSION_NAME_MAX = 64
VERSION_TRAINED_ON = "version:"  # a model's trained_on when it learnt from a dataset version

# Ultralytics' names for the values a chart and the registry show.
METRIC_KEYS = {
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
    "map50": "metrics/mAP50(B)",
    "map50_95": "metrics/mAP50-95(B)",
}
LOSS_KEYS = ("box_loss", "cls_loss", "dfl_loss")


@dataclass(frozen=True)
class TrainingParams:
    """What a training task runs: ``base`` is an architecture YAML or ``model:<name>``."""

    base: str = "yolo11n.yaml"
    epochs: int = 50
    imgsz: int = 640
    batch: int = 16
    patience: int = 50
    resume_of: int | None = None  # the task whose last weights a resumed training continues
    version: str | None = None  # a dataset version to train on (None: the project's current data)

    @property
    def base_model(self) -> str | None:
        """The registry model fine-tuned from, or ``None`` for an architecture."""
        return self.base.removeprefix(MODEL_PREFIX) if self.base.startswith(MODEL_PREFIX) else None

    def to_params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _whole(raw: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if value in (None, ""):
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise Invalid(f"{key.capitalize()} must be a whole number, not {value!r}.") from None
    if not low <= number <= high:
        raise Invalid(f"{key.capitalize()} must be between {low} and {high}, not {number}.")
    return number


def validate_training_params(raw: dict[str, Any], models: set[str] | None = None) -> TrainingParams:
    """The settings of a training form or API body, checked. ``models`` are the names of the
    project's registry models a training may start from."""
    base = str(raw.get("base") or TrainingParams.base).strip()
    if base.startswith(MODEL_PREFIX):
        name = base.removeprefix(MODEL_PREFIX)
        if models is None or name not in models:
            raise Invalid(f"There is no model {name!r} in this project to start from.")
    elif base not in ARCHITECTURES:
        raise Invalid(
            f"{base!r} is not an architecture ydc trains; choose one of {', '.join(ARCHITECTURES)}"
            " or a model of this project."
        )
    imgsz = _whole(raw, "imgsz", TrainingParams.imgsz, *IMAGE_SIZES)
    if imgsz % 32:
        raise Invalid(f"Image size must be a multiple of 32 (the network's stride), not {imgsz}.")
    version = str(raw.get("version") or "").strip() or None
    if version is not None and len(version) > VERSION_NAME_MAX:
        raise Invalid(f"There is no dataset version named {version[:40]!r}…")
    return TrainingParams(
        version=version,
        base=base,
        epochs=_whole(raw, "epochs", TrainingParams.epochs, 1, MAX_EPOCHS),
        imgsz=imgsz,
        batch=_whole(raw, "batch", TrainingParams.batch, 1, MAX_BATCH),
        patience=_whole(raw, "patience", TrainingParams.patience, 0, MAX_EPOCHS),
    )


def params_of(raw: dict[str, Any]) -> TrainingParams:
    """A queued task's params back as ``TrainingParams`` (already checked when queued)."""
    fields = TrainingParams.__dataclass_fields__
    return TrainingParams(**{k: v for k, v in raw.items() if k in fields})


def epoch_metrics(metrics: dict[str, Any], losses: dict[str, Any]) -> dict[str, float]:
    """One epoch's figures under ydc's names: train losses, val precision/recall/mAPs (NaN and
    missing values dropped: JSON has no NaN)."""
    found: dict[str, float] = {}
    for ours, theirs in METRIC_KEYS.items():
        _put(found, ours, metrics.get(theirs))
    for key, value in losses.items():
        name = key.rsplit("/", 1)[-1]
        prefix = "val_" if key.startswith("val/") else ""
        _put(found, prefix + name, value)
    for key, value in metrics.items():
        if key.startswith("val/"):
            _put(found, "val_" + key.rsplit("/", 1)[-1], value)
    return found


def _put(into: dict[str, float], key: str, value: Any) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return
    if number == number and abs(number) != float("inf"):
        into[key] = number


__all__ = [
    "ARCHITECTURES",
    "KIND",
    "LOSS_KEYS",
    "METRIC_KEYS",
    "MODEL_PREFIX",
    "TrainingParams",
    "epoch_metrics",
    "params_of",
    "validate_training_params",
]
