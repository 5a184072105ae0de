"""Dataclasses shared by the stores, services and views.

The seed fields (``Annotation``, ``DatasetInfo``, ``ImageInfo``, ``LabelData``, ``ModelInfo``) keep
their names and order; fields ydc adds come after them with defaults, so positional construction
as the seeds do it still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

SPLITS: tuple[str, ...] = ("train", "val", "test")


class LabelSource(StrEnum):
    MANUAL = "manual"
    MODEL = "model"
    PROMPT = "prompt"
    IMPORT = "import"


class LabelStatus(StrEnum):
    ACCEPTED = "accepted"
    PENDING = "pending"
    REJECTED = "rejected"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class SessionSource(StrEnum):
    VIDEO = "video"
    WEBCAM = "webcam"
    FOLDER = "folder"
    STREAM = "stream"


class SessionStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class Annotation:
    """One box: ``class_id`` is the class's YOLO index (its position); x, y, width, height are
    the normalised centre and size in the upright image."""

    class_id: int
    x: float
    y: float
    width: float
    height: float
    id: int | None = None
    source: str = LabelSource.MANUAL.value
    confidence: float | None = None
    status: str = LabelStatus.ACCEPTED.value
    model: str | None = None


@dataclass
class ClassInfo:
    id: int
    position: int
    name: str
    colour: str
    prompts: list[str] = field(default_factory=list)


@dataclass
class ClassUsage:
    """What deleting (or merging away) a class takes with it."""

    labels: int  # accepted boxes
    suggestions: int  # pending suggestions
    images_left_empty: int  # images whose only accepted boxes are of this class


@dataclass
class ProjectUsage:
    """What deleting a project takes with it."""

    images: int
    labels: int
    suggestions: int
    models: int


@dataclass
class DatasetInfo:
    name: str
    path: Path
    classes: list[str]
    num_images: dict[str, int]
    created_at: float
    modified_at: float
    id: int = 0
    description: str = ""
    class_details: list[ClassInfo] = field(default_factory=list)


@dataclass
class ImageInfo:
    filename: str
    split: str
    path: Path
    width: int
    height: int
    size_bytes: int
    has_labels: bool
    id: int = 0
    dataset: str = ""
    sha256: str = ""
    phash: str | None = None
    split_pinned: bool = False
    missing: bool = False
    no_objects: bool = False
    version: int = 0
    session_id: int | None = None
    created_at: float = 0.0


class ImageState(StrEnum):
    """Grid filters on an image's labelling state."""

    LABELLED = "labelled"  # accepted boxes or "no objects"
    UNLABELLED = "unlabelled"
    NO_OBJECTS = "no_objects"
    SUGGESTIONS = "suggestions"  # has pending suggestions
    MISSING = "missing"  # its file is gone from disk


@dataclass(frozen=True)
class ImageFilter:
    """Filters of the image grid; they combine (AND)."""

    split: str | None = None
    state: ImageState | None = None
    class_id: int | None = None  # stable id of a class among the image's accepted boxes
    name: str | None = None  # part of the file name, ignoring case
    session_id: int | None = None  # frames of one capture session


@dataclass
class IngestResult:
    """What became of one uploaded file."""

    original_name: str
    status: str  # "stored" | "duplicate" | "refused"
    filename: str | None = None
    split: str | None = None
    reason: str | None = None  # why it was refused, or the existing name of a duplicate


@dataclass
class LabelData:
    filename: str
    split: str
    annotations: list[Annotation]


@dataclass
class ModelInfo:
    name: str
    path: Path
    base_model: str
    dataset_name: str
    created_at: float
    epochs_completed: int
    best_map50: float | None
    is_active: bool
    id: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class SessionInfo:
    """A capture session: where frames come from and what became of them."""

    id: int
    dataset: str
    source: str
    settings: dict[str, Any]
    status: str
    counts: dict[str, int]
    log: list[str]
    created_at: float
    ended_at: float | None = None


@dataclass
class TaskInfo:
    id: int
    kind: str
    status: str
    progress: float
    message: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    worker: str | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    dataset: str | None = None

    @property
    def finished(self) -> bool:
        return TaskStatus(self.status).finished


@dataclass
class ExportResult:
    """What an export wrote and what it left out (and why)."""

    path: Path
    images: int
    labels: int
    left_out: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Snapshot:
    """The frozen copy of a project a training reads: labelled images (hard links) with fresh
    label files and a ``data.yaml``, in a folder of its own."""

    folder: Path
    data_yaml: Path
    images: dict[str, int]  # per split
    boxes: int
    ids_sha256: str  # sha256 of the sorted image ids: which images exactly

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "boxes": self.boxes, "ids_sha256": self.ids_sha256}


@dataclass
class SplitHealth:
    """How far the images of one split (or of all, ``split="all"``) are labelled."""

    split: str
    images: int = 0
    labelled: int = 0  # accepted boxes or "no objects"
    no_objects: int = 0
    with_suggestions: int = 0  # pending suggestions waiting for review
    missing: int = 0  # the row says it exists, its file is gone from disk

    @property
    def unlabelled(self) -> int:
        return self.images - self.labelled


@dataclass
class ClassBoxes:
    """A class (``position`` is its YOLO index) and how many accepted boxes it has."""

    id: int
    position: int
    name: str
    colour: str
    boxes: int = 0


@dataclass
class NearDuplicateGroup:
    """Images whose perceptual hashes lie within the near-duplicate distance, transitively.

    ``members`` are the ones shown (a bounded number, every split of the group represented);
    ``size`` counts them all and ``splits`` names every split they are in, in split order.
    """

    size: int
    splits: tuple[str, ...]
    members: list[ImageInfo]

    @property
    def spans_splits(self) -> bool:
        """Near-copies in train and val (or test) leak: the model is scored on what it saw."""
        return len(self.splits) > 1


@dataclass
class DatasetHealth:
    """What the project overview's "Dataset health" section shows."""

    dataset: str
    splits: list[SplitHealth]  # one per split, in ``SPLITS`` order
    classes: list[ClassBoxes]  # in class (YOLO) order
    exact_duplicates: int  # stored copies of a file beyond its first (same sha256)
    unhashed: int  # images without a perceptual hash: never in a near-duplicate group
    near_duplicate_groups: int
    near_duplicate_images: int
    leaking_groups: int  # groups with images in more than one split
    leaking_images: int
    groups: list[NearDuplicateGroup]  # the first few: those that leak, then the biggest

    @property
    def total(self) -> SplitHealth:
        """The splits added up."""
        return SplitHealth(
            "all",
            images=sum(s.images for s in self.splits),
            labelled=sum(s.labelled for s in self.splits),
            no_objects=sum(s.no_objects for s in self.splits),
            with_suggestions=sum(s.with_suggestions for s in self.splits),
            missing=sum(s.missing for s in self.splits),
        )

    @property
    def boxes(self) -> int:
        return sum(c.boxes for c in self.classes)
