"""The store ABCs: the only door to storage.

Seed names and positional parameters are kept (reference documents 000/001/002); what ydc adds is
keyword-only. Every method is ``async``. Errors: ``NotFound`` (a ``FileNotFoundError``) for a
missing dataset, image, model, session or task; ``AlreadyExists``/``Invalid`` (``ValueError``) for
a taken name or bad input; ``Conflict`` for a stale version.

Atomicity: each call is its own unit of work unless it runs inside ``Stores.unit_of_work()``,
in which case it joins that unit and nothing is committed (and no file is put in place for good)
until the unit commits.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from app.domain.accounts import AccountStore
from app.domain.errors import DuplicateImage, Invalid
from app.domain.import_rules import ImportReport
from app.domain.labels import ImageLabels, SuggestionCount, UncertainImage
from app.domain.models import (
    SPLITS,
    Annotation,
    ClassInfo,
    ClassUsage,
    DatasetHealth,
    DatasetInfo,
    ExportResult,
    ImageFilter,
    ImageInfo,
    ModelInfo,
    SessionInfo,
    Snapshot,
    TaskInfo,
)
from app.domain.reconcile import ReconcileReport, SyncReport
from app.domain.versions import ProjectSources, VersionInfo
from app.domain.webhooks import NotificationStore

ProgressCallback = Callable[[float, str], Awaitable[None]]
"""Called with a fraction in [0, 1] and a message; may raise ``Cancelled`` to stop the work."""


class UnitOfWork(ABC):
    """One transaction plus the file actions that go with it.

    Leaving the ``async with`` block without ``commit()`` rolls back the rows and undoes the
    files the unit created. After a commit, the unit's deferred file actions run (moves, unlinks,
    mirror rewrites).
    """

    @abstractmethod
    async def __aenter__(self) -> UnitOfWork: ...

    @abstractmethod
    async def __aexit__(self, *exc: object) -> None: ...

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None: ...


class DatasetStore(ABC):
    """Projects (the seeds call them datasets): CRUD, classes, prompts, zip export/import."""

    @abstractmethod
    async def create(self, name: str, classes: list[str], *, description: str = "") -> DatasetInfo:
        """Create a project with its ordered classes, its folder and its ``data.yaml``.

        Raises ``Invalid`` for a bad name or class list and ``AlreadyExists`` when the name is
        taken (ignoring case) or a folder of that name already lies in storage.
        """

    @abstractmethod
    async def list(self) -> list[DatasetInfo]:
        """All projects, by name, with image counts per split."""

    @abstractmethod
    async def get(self, name: str) -> DatasetInfo | None:
        """The project, or ``None`` when there is none of that name."""

    @abstractmethod
    async def delete(self, name: str) -> bool:
        """Delete the project, its rows and (after the commit) its folder. ``False`` if absent."""

    @abstractmethod
    async def update_classes(self, name: str, classes: builtins.list[str]) -> None:
        """Set the ordered class list.

        A name that matches an existing class (ignoring case) keeps that class (its id, colour,
        prompts and labels) at its new position; a new name adds a class; a class left out is
        deleted with its labels. The mirror (``data.yaml``, label files) is rewritten.
        Raises ``NotFound`` for an unknown project, ``Invalid`` for bad or duplicate names.
        """

    @abstractmethod
    async def get_classes(self, name: str) -> builtins.list[ClassInfo]:
        """The project's classes in YOLO order. Raises ``NotFound``."""

    @abstractmethod
    async def add_class(
        self, name: str, class_name: str, *, colour: str | None = None
    ) -> ClassInfo:
        """Append a class (last position). ``Invalid``/``AlreadyExists`` for a bad or taken
        name (ignoring case), ``NotFound`` for the project."""

    @abstractmethod
    async def rename_class(self, name: str, class_id: int, new_name: str) -> ClassInfo:
        """Rename a class; its id, position, colour and labels stay. ``data.yaml`` is
        rewritten. ``NotFound`` (project or class), ``Invalid``/``AlreadyExists``."""

    @abstractmethod
    async def set_class_colour(self, name: str, class_id: int, colour: str) -> ClassInfo:
        """Set the ``#rrggbb`` colour. ``NotFound``, ``Invalid``."""

    @abstractmethod
    async def move_class(self, name: str, class_id: int, position: int) -> builtins.list[ClassInfo]:
        """Move a class to ``position`` (0-based, clamped); the others shift. Label files of
        images with boxes of a moved class are rewritten. ``NotFound``."""

    @abstractmethod
    async def class_usage(self, name: str, class_id: int) -> ClassUsage:
        """How many accepted boxes and pending suggestions the class has, and how many images
        would be left with no accepted box without it. ``NotFound``."""

    @abstractmethod
    async def merge_class(self, name: str, source_id: int, target_id: int) -> ClassUsage:
        """Move every label of ``source_id`` to ``target_id``, then delete the source class
        (the classes after it shift up). Returns what was moved. ``NotFound``, ``Invalid``
        when both are the same class."""

    @abstractmethod
    async def delete_class(self, name: str, class_id: int) -> ClassUsage:
        """Delete the class with its boxes and suggestions (the classes after it shift up, the
        mirror is rewritten). Returns what went with it. ``NotFound``."""

    @abstractmethod
    async def get_prompts(self, name: str) -> dict[int, builtins.list[str]]:
        """YOLO-World prompts by class index (classes without prompts left out). ``NotFound``."""

    @abstractmethod
    async def save_prompts(self, name: str, prompts: dict[int, builtins.list[str]]) -> None:
        """Replace the prompts of the given class indices; mirrored to ``prompts.yaml``.

        Raises ``NotFound`` for an unknown project and ``Invalid`` for an index out of range.
        """

    @abstractmethod
    async def get_split_ratios(self, name: str) -> dict[str, float]:
        """The ratios a new image's split is drawn against (train, val, test). ``NotFound``."""

    @abstractmethod
    async def set_split_ratios(self, name: str, ratios: dict[str, float]) -> None:
        """Set the project's ratios (checked: train, val and test in [0, 1] adding up to 1);
        images already in a split stay there (rebalancing moves them). ``ydc.json`` follows.
        ``NotFound``, ``Invalid``."""

    @abstractmethod
    async def export_zip(
        self,
        name: str,
        output_path: Path,
        *,
        progress: ProgressCallback | None = None,
        splits: Sequence[str] | None = None,
        format: str | None = None,
    ) -> Path:
        """Write ``<output_path>/<name>.zip`` in the Ultralytics layout and return its path.

        ``images/{split}/``, ``labels/{split}/`` and a ``data.yaml`` without ``path``. Only
        labelled images go in (a "no objects" image with an empty label file); unlabelled and
        missing images are left out. Original bytes, stored without recompression.

        ``splits`` (default all) limits the export to those splits. ``format`` (see
        ``app.domain.export_formats``) ``"yolo11"`` writes CVAT's YOLO 1.1 layout
        (``obj.names``, ``obj.data``, ``obj_<subset>_data/``, ``<subset>.txt``) and ``"coco"``
        ``annotations/instances_<split>.json`` beside ``images/<split>/``; the zip is then
        ``<name>-<format>.zip``. ``Invalid`` for an unknown format or split or no split.
        """

    @abstractmethod
    async def export(
        self,
        name: str,
        output_path: Path,
        *,
        progress: ProgressCallback | None = None,
        splits: Sequence[str] | None = None,
        format: str | None = None,
    ) -> ExportResult:
        """Like ``export_zip`` but also says what went in and what was left out."""

    @abstractmethod
    async def snapshot(
        self, name: str, folder: Path, *, splits: Sequence[str] = SPLITS
    ) -> Snapshot:
        """Freeze what a training will read into ``folder`` (new or empty; only ``splits``,
        default all): hard links of the labelled images that are on disk (copies across
        filesystems), their label files written from the accepted boxes, and a ``data.yaml``
        whose ``path`` is the folder. Labelling may go on meanwhile: the copy does not change.
        ``NotFound`` for the project."""

    @abstractmethod
    async def import_zip(self, zip_path: Path, name: str | None = None) -> DatasetInfo:
        """Create a project from a zip of another tool's export (what ``import_dataset``
        reads); the name defaults to the zip's stem; its classes are the export's.

        ``AlreadyExists`` for a taken name. A zip that is no dataset (damaged, a path that
        leaves the archive, a symbolic link, a zip bomb, no image) raises ``Invalid`` and
        creates nothing; within a dataset, a bad line or file is left out and the rest comes
        in (``import_dataset`` says what was left out and why).
        """

    @abstractmethod
    async def import_dataset(
        self,
        name: str,
        source: Path,
        *,
        create: bool = False,
        add_classes: bool = True,
        allowed_links: Sequence[Path] = (),
        progress: ProgressCallback | None = None,
        only_zip: bool = False,
    ) -> ImportReport:
        """Import a zip or a folder (``only_zip``: a zip) into the project ``name``, created
        (with the source's classes) when ``create`` once the source has proved a dataset:
        Ultralytics YOLO (a dataset YAML, splits as folders or list files), Roboflow, CVAT
        YOLO 1.1, Label Studio YOLO, COCO JSON or Pascal VOC (``app.domain.import_plan``
        tells them apart).

        Classes match the project's by name (case and surrounding spaces ignored); the others
        are appended with ``add_classes``, else their boxes are left out. Each line and box is
        judged on its own (``app.domain.import_rules``); an image the project holds already is
        skipped (it gets the boxes only if it has none). A folder's symbolic links must stay
        under ``allowed_links``. Raises ``NotFound`` for the project (unless ``create``),
        ``Invalid`` for a source that is no dataset (nothing imported, nothing created).
        """

    @abstractmethod
    async def health(
        self, dataset: str, *, max_groups: int = 20, max_members: int = 6
    ) -> DatasetHealth:
        """The project's dataset health: images per split and how far they are labelled,
        accepted boxes per class (class order), missing files, exact duplicates, and the
        near-duplicate groups of the stored perceptual hashes (found by bands, never by
        comparing all pairs) with the ones spanning splits counted.

        At most ``max_groups`` groups are returned (those spanning splits first, then the
        biggest), each with at most ``max_members`` members (every split of the group shown);
        the totals count them all. Raises ``NotFound``.
        """


class ImageStore(ABC):
    """Image bytes in a project's split folders, indexed by the database."""

    @abstractmethod
    async def save(
        self,
        dataset: str,
        split: str | None,
        filename: str,
        image: np.ndarray,
        *,
        session_id: int | None = None,
    ) -> ImageInfo:
        """Encode a BGR frame once (format from the file name's extension) and store it.

        The stored name may differ from ``filename``: it is made safe, and a name whose stem is
        already taken in the project (ignoring case) gets a ``-1``, ``-2``… suffix.
        ``split=None`` draws it: the split of a near-duplicate already in the project, else the
        one the content hash draws against the project's ratios.
        Raises ``NotFound`` (project), ``Invalid`` (split, name, empty image),
        ``DuplicateImage`` (same bytes already stored).
        """

    @abstractmethod
    async def save_file(
        self,
        dataset: str,
        split: str | None,
        filename: str,
        source: Path | IO[bytes],
        *,
        session_id: int | None = None,
        skip_within: tuple[str, int] | None = None,
    ) -> ImageInfo:
        """Store an upload's original bytes unchanged, after decoding them to check they are an
        image. Same naming and errors as ``save``; ``Invalid`` when the bytes are not an image.
        ``skip_within=(phash, bits)``: ``NearDuplicate`` (nothing stored) when the image's
        perceptual hash lies within ``bits`` of ``phash`` (0 bits skips nothing).
        """

    @abstractmethod
    async def save_files(
        self,
        dataset: str,
        split: str | None,
        files: builtins.list[tuple[str, Path | IO[bytes]]],
    ) -> builtins.list[ImageInfo | DuplicateImage | Invalid]:
        """``save_file`` for many (name, source) pairs at once, committed a batch per unit of
        work. One outcome per file, in order: its ``ImageInfo``, or the ``DuplicateImage`` or
        ``Invalid`` that kept it out (one bad file never spoils the others). Each file is
        checked against the project and the files before it in the call: the same bytes are a
        duplicate of the first, a taken stem gets a suffix, a near-duplicate joins its twin's
        split. Raises ``NotFound`` (project) and ``Invalid`` (split) for the whole call.
        """

    @abstractmethod
    async def load(self, dataset: str, split: str, filename: str) -> np.ndarray:
        """Decode the image (BGR, upright). Raises ``NotFound``."""

    @abstractmethod
    async def delete(self, dataset: str, split: str, filename: str) -> bool:
        """Delete the image, its labels and files. ``False`` when it is not there."""

    @abstractmethod
    async def move(self, dataset: str, filename: str, from_split: str, to_split: str) -> None:
        """Move the image, with its labels, to another split (and pin it there).

        Raises ``NotFound`` when the image is not in ``from_split``.
        """

    @abstractmethod
    async def list(
        self,
        dataset: str,
        split: str | None = None,
        *,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[ImageInfo]:
        """Images in id order, optionally one split; keyset pagination with ``after_id``/``limit``.

        Width and height are the recorded upright size. Raises ``NotFound`` for the project.
        """

    @abstractmethod
    async def get(self, dataset: str, filename: str) -> ImageInfo:
        """The image of that name in any split. Raises ``NotFound``."""

    @abstractmethod
    async def exists(self, dataset: str, split: str, filename: str) -> bool:
        """Whether the image is stored in that split."""

    @abstractmethod
    async def search(
        self,
        dataset: str,
        filters: ImageFilter | None = None,
        *,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[ImageInfo]:
        """Images matching every filter, in id order, ``limit`` after ``after_id`` (keyset
        pagination); with ``before_id``, the ``limit`` before it, nearest first (the previous
        image). Raises ``NotFound`` (project), ``Invalid`` (split, class of another project)."""

    @abstractmethod
    async def count(self, dataset: str, filters: ImageFilter | None = None) -> int:
        """How many images match the filters (one SQL count)."""

    @abstractmethod
    async def thumbnail(self, dataset: str, filename: str) -> Path:
        """The image's thumbnail (about 256 px on the long side, upright, keyed by sha256),
        made again if it is missing. Raises ``NotFound``."""

    @abstractmethod
    async def move_many(self, dataset: str, filenames: builtins.list[str], to_split: str) -> int:
        """Move images (with their label files) to a split and pin them, in one unit of work;
        returns how many changed split. ``NotFound`` if any name is unknown (nothing moves)."""

    @abstractmethod
    async def delete_many(self, dataset: str, filenames: builtins.list[str]) -> int:
        """Delete images with their labels and files, in one unit of work; returns how many.
        ``NotFound`` if any name is unknown (nothing is deleted)."""

    @abstractmethod
    async def rebalance(
        self, dataset: str, *, progress: ProgressCallback | None = None
    ) -> dict[str, int]:
        """Draw the split of every unpinned image again from its hash and the project's ratios
        (near-duplicates share a split); pinned images stay. Returns how many images each split
        holds afterwards.

        The images move a chunk per unit of work (the write lock is never held for the whole
        project); ``progress`` is called between chunks, outside any unit. An image pinned or
        deleted meanwhile is left alone. If it stops halfway (``Cancelled`` from ``progress``, a
        crash), the chunks done stay done and a second call finishes the redraw.
        """


class LabelStore(ABC):
    """Accepted boxes of an image; the ``labels/<split>/<stem>.txt`` files are their mirror.

    Pending suggestions are labels waiting for review: not in the mirror, and adding them never
    bumps the image's version (background work never makes an annotator's save fail). Saving,
    accepting and rejecting bump it.
    """

    @abstractmethod
    async def save(
        self,
        dataset: str,
        split: str | None,
        filename: str,
        annotations: list[Annotation],
        *,
        expected_version: int | None = None,
        no_objects: bool = False,
        reject: Collection[int] = (),
    ) -> ImageLabels:
        """Replace the image's accepted boxes with ``annotations``, in one unit of work, and
        return the image as saved (new version, label ids), as ``image_labels`` would.

        An annotation carrying the ``id`` of an accepted label keeps that label (its source,
        model and confidence); one carrying the id of a pending suggestion accepts it (source,
        model and confidence kept); one without an id (or with an id of no such label) is a new
        label. Accepted labels not given are deleted. The pending suggestions whose ids are in
        ``reject`` are rejected (kept, status rejected); the others stay pending.
        ``no_objects`` marks the image as a negative example and rejects all its pending
        suggestions; saving sets the mark to ``no_objects`` and bumps the version.
        ``split=None`` finds the image in any split.

        Raises ``NotFound`` (image, or not in ``split``), ``Invalid`` (class index out of range,
        box outside the image or under one pixel, confidence outside [0, 1], boxes with
        ``no_objects``, an id in ``reject`` that is not a pending suggestion of the image or is
        also kept, an unknown model), ``Conflict`` when ``expected_version`` is stale. Nothing
        changes when it raises.
        """

    @abstractmethod
    async def load(self, dataset: str, split: str, filename: str) -> list[Annotation]:
        """The image's accepted boxes with their ids, in id order (empty list for none).
        Raises ``NotFound`` (image)."""

    @abstractmethod
    async def delete(self, dataset: str, split: str, filename: str) -> bool:
        """Remove the image's accepted boxes and "no objects" mark. ``False`` if it had none."""

    @abstractmethod
    async def move(self, dataset: str, filename: str, from_split: str, to_split: str) -> None:
        """Labels live with their image: moves the image if it is still in ``from_split``, and
        is a no-op when ``ImageStore.move`` already took it to ``to_split``.

        Raises ``NotFound`` when the image is in neither split.
        """

    @abstractmethod
    async def exists(self, dataset: str, split: str, filename: str) -> bool:
        """Whether the image is labelled (has a label file): accepted boxes or "no objects"."""

    @abstractmethod
    async def set_no_objects(
        self, dataset: str, filename: str, no_objects: bool, *, expected_version: int | None = None
    ) -> None:
        """Mark the image as a negative example (empty label file), or clear the mark.

        Marking removes its accepted boxes and rejects its pending suggestions.
        """

    @abstractmethod
    async def add_suggestions(
        self, dataset: str, filename: str, annotations: list[Annotation]
    ) -> None:
        """Add pending suggestions (not part of the mirror; the version is not bumped).

        An annotation's source ``manual`` is stored as ``model``. All or nothing: ``Invalid``
        for a bad box, confidence or source, or a model the project does not have;
        ``NotFound`` (image).
        """

    @abstractmethod
    async def replace_suggestions(
        self,
        dataset: str,
        model: str | None,
        predictions: dict[str, Sequence[tuple[int, float, float, float, float, float]]],
        *,
        confidence: float = 0.0,
    ) -> dict[str, int]:
        """A model's predictions (class index, confidence, normalised centre and size) for images by
        file name become that model's pending suggestions, in one unit of work: per image, the
        model's earlier pending suggestions are replaced (``model`` ``None``: the project's text
        prompts, source ``prompt``, replacing the earlier prompt suggestions); a prediction
        under ``confidence``, overlapping an accepted box of its class or matching a rejected
        suggestion of its class (``app.domain.autolabel.screen``) is skipped. Accepted labels and
        versions are never touched. Returns the counts ``added``, ``replaced``,
        ``below_confidence``, ``overlap_accepted``, ``matches_rejected`` and ``gone`` (images no
        longer there). ``Invalid`` for a model the project lacks or a bad box;
        ``NotFound`` (project).
        """

    @abstractmethod
    async def list_suggestions(self, dataset: str, filename: str) -> list[Annotation]:
        """The image's pending suggestions with their ids, in id order."""

    @abstractmethod
    async def image_labels(self, dataset: str, filename: str) -> ImageLabels:
        """The image (any split) with its accepted labels and pending suggestions, read
        together. Raises ``NotFound``."""

    @abstractmethod
    async def accept_suggestions(
        self,
        dataset: str,
        filename: str,
        ids: Collection[int] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Accept the image's pending suggestions ``ids`` (all of them for ``None``): they
        become accepted labels, source, model and confidence kept. Clears "no objects", bumps
        the version and rewrites the mirror when any was accepted; returns how many.

        Raises ``NotFound`` (image, or an id that is not a pending suggestion of the image:
        nothing is accepted then), ``Conflict`` (stale ``expected_version``).
        """

    @abstractmethod
    async def reject_suggestions(
        self,
        dataset: str,
        filename: str,
        ids: Collection[int] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Reject the image's pending suggestions ``ids`` (all for ``None``): the rows stay,
        status rejected, never exported. Bumps the version when any was rejected; returns how
        many. Errors as ``accept_suggestions``.
        """

    @abstractmethod
    async def suggestion_summary(
        self, dataset: str, min_confidence: float = 0.0
    ) -> SuggestionCount:
        """The project's pending suggestions with a confidence of at least ``min_confidence``,
        and the images they are on. A suggestion of unknown confidence counts only at a
        threshold of 0. Raises ``NotFound`` (project), ``Invalid`` (threshold outside [0, 1]).
        """

    @abstractmethod
    async def uncertain_images(
        self,
        dataset: str,
        *,
        after: tuple[float, int] | None = None,
        before: tuple[float, int] | None = None,
        limit: int = 50,
    ) -> list[UncertainImage]:
        """Images with pending suggestions, least confident first: by their lowest pending
        confidence (unknown ones last), then id. Keyset pages by ``UncertainImage.rank``:
        ``limit`` after ``after``, or with ``before`` the ``limit`` before it, nearest first.
        Raises ``NotFound`` (project), ``Invalid`` (limit below one)."""

    @abstractmethod
    async def suggestions_per_class(self, dataset: str) -> dict[int, int]:
        """Pending suggestions per class (by the class's stable id; classes with none left
        out). Raises ``NotFound`` (project)."""

    @abstractmethod
    async def accept_suggestions_above(
        self, dataset: str, min_confidence: float
    ) -> SuggestionCount:
        """Accept every pending suggestion of the project that ``suggestion_summary`` counts at
        this threshold, in one unit of work: each touched image's version is bumped, its "no
        objects" mark cleared and its label file rewritten (only those images'). Returns how
        many were accepted, on how many images. ``NotFound``, ``Invalid`` as the summary.
        """


class ModelStore(ABC):
    """Trained weights and their metadata; one active model per project."""

    @abstractmethod
    async def save(
        self,
        name: str,
        weights_path: Path,
        base_model: str,
        dataset_name: str,
        epochs_completed: int,
        metrics: dict[str, Any],
        *,
        last_weights: Path | None = None,
        task_id: int | None = None,
        trained_on: str | None = None,
    ) -> ModelInfo:
        """Copy the weights into the project's ``models/<name>/`` and register the model.

        ``metrics`` may carry ``best_map50`` and ``epochs`` (a list of per-epoch dicts).
        A training also gives its ``last_weights`` (copied beside the best as ``last.pt``), the
        ``task_id`` that trained it and ``trained_on``, the JSON of the dataset snapshot it saw.
        Raises ``AlreadyExists`` for a taken name, ``NotFound`` for the project or a weights
        file, ``Invalid`` for a bad name.
        """

    @abstractmethod
    async def load(self, name: str) -> Path:
        """Path of the model's weights. Raises ``NotFound``."""

    @abstractmethod
    async def list(self, *, dataset: str | None = None) -> list[ModelInfo]:
        """All models (or one project's), newest first."""

    @abstractmethod
    async def get(self, name: str) -> ModelInfo | None:
        """The model, or ``None``."""

    @abstractmethod
    async def delete(self, name: str) -> bool:
        """Delete the model and (after the commit) its files. ``False`` if absent."""

    @abstractmethod
    async def set_active(self, name: str) -> None:
        """Make this the active model of its project (the project's other models become
        inactive). Raises ``NotFound``."""

    @abstractmethod
    async def get_active(self, *, dataset: str | None = None) -> ModelInfo | None:
        """The project's active model; without ``dataset``, the most recently activated one."""


class SessionStore(ABC):
    """Capture sessions (video, webcam, folder, stream) and their log."""

    @abstractmethod
    async def create(
        self, dataset: str, source: str, settings: dict[str, Any] | None = None
    ) -> SessionInfo:
        """Start a session in progress. Raises ``NotFound`` (project), ``Invalid`` (source)."""

    @abstractmethod
    async def get(self, session_id: int) -> SessionInfo:
        """Raises ``NotFound``."""

    @abstractmethod
    async def list(self, dataset: str) -> list[SessionInfo]:
        """The project's sessions, newest first. Raises ``NotFound`` (project)."""

    @abstractmethod
    async def record(
        self,
        session_id: int,
        *,
        counts: dict[str, int] | None = None,
        log: str | None = None,
        status: str | None = None,
    ) -> SessionInfo:
        """Add to the counts, append a log line, and/or set the status (ending the session
        when it becomes ``completed`` or ``failed``). Raises ``NotFound``, ``Invalid``."""

    @abstractmethod
    async def delete(self, session_id: int) -> bool:
        """Delete the session row (its images stay). ``False`` if absent."""


class TaskStore(ABC):
    """The durable task queue.

    A task runs ``queued`` → ``running`` → ``succeeded``/``failed``/``cancelled``. A running task
    belongs to the worker that claimed it; its heartbeat proves it alive. A task whose heartbeat is
    older than the timeout is requeued while attempts remain, else failed as interrupted.
    """

    @abstractmethod
    async def enqueue(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        dataset: str | None = None,
        max_attempts: int = 3,
    ) -> TaskInfo:
        """Queue a task. Raises ``NotFound`` for an unknown project."""

    @abstractmethod
    async def get(self, task_id: int) -> TaskInfo:
        """Raises ``NotFound``."""

    @abstractmethod
    async def list(
        self,
        *,
        dataset: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
        kinds: builtins.list[str] | None = None,
    ) -> list[TaskInfo]:
        """Recent tasks, newest first (keyset pagination with ``before_id``); only ``kinds``
        when given."""

    @abstractmethod
    async def claim(
        self, worker: str, *, kinds: builtins.list[str] | None = None
    ) -> TaskInfo | None:
        """Atomically take the oldest queued task for ``worker`` (attempts + 1, fresh
        heartbeat); ``None`` when nothing is queued. Two claimers never get the same task."""

    @abstractmethod
    async def heartbeat(
        self,
        task_id: int,
        worker: str,
        *,
        progress: float | None = None,
        message: str | None = None,
    ) -> bool:
        """Refresh the heartbeat (and progress/message) of a task this worker holds.

        Returns ``True`` when a cancel has been requested. Raises ``Conflict`` when the task is
        no longer running for this worker (requeued, cancelled or finished).
        """

    @abstractmethod
    async def finish(
        self,
        task_id: int,
        worker: str,
        *,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> TaskInfo:
        """End a task this worker holds as succeeded, failed or cancelled. ``Conflict`` if it is
        no longer this worker's."""

    @abstractmethod
    async def record_epoch(self, task_id: int, epoch: int, metrics: dict[str, Any]) -> None:
        """Store one training epoch's metrics (losses, precision, recall, mAPs) as it ends; an
        epoch recorded again (a resumed training) replaces the earlier row. ``NotFound``."""

    @abstractmethod
    async def epochs(self, task_id: int) -> builtins.list[dict[str, Any]]:
        """A training task's epochs in order, each ``{"epoch": n, **metrics}``."""

    @abstractmethod
    async def request_cancel(self, task_id: int) -> TaskInfo:
        """A queued task is cancelled at once; a running one is asked to stop. A finished task
        is left as it is. Raises ``NotFound``."""

    @abstractmethod
    async def requeue_stale(
        self, heartbeat_timeout_s: float, *, exclude_workers: Collection[str] = ()
    ) -> builtins.list[int]:
        """Requeue (or fail, when out of attempts) running tasks whose heartbeat is older than
        the timeout; return their ids. A task with a fresh heartbeat is never touched, nor one
        held by a worker in ``exclude_workers`` (a runner that knows its worker is alive)."""


class StorageStore(ABC):
    """The disk against the database: reconcile, recovery from disk, and missing images found
    again (DESIGN.md "Start-up reconcile and recovery")."""

    @abstractmethod
    async def reconcile(
        self,
        *,
        project: str | None = None,
        dry_run: bool = False,
        deep: bool = False,
        exclusive: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ReconcileReport:
        """Make the folders of registered projects agree with the rows (or, ``dry_run``, say
        what that would change). ``exclusive``: no other process uses the data dir, so every
        temp file is stale. Raises ``NotFound`` for an unknown ``project``."""

    @abstractmethod
    async def sync_from_disk(
        self,
        *,
        project: str | None = None,
        dry_run: bool = False,
        prefer_disk: bool = False,
        progress: ProgressCallback | None = None,
    ) -> SyncReport:
        """Register what lies under ``projects/`` and the database lacks: projects, classes,
        prompts, images, labels (from ``.txt`` when the image has none in the database, or
        always with ``prefer_disk``) and models. Running it twice changes nothing."""

    @abstractmethod
    async def locate(self, dataset: str, source: Path | IO[bytes] | bytes) -> ImageInfo:
        """Put the bytes of a missing image back: matched by sha256 against the project's
        images. Raises ``NotFound`` when no image has these bytes, ``NotMissing`` when the
        image they belong to has its file."""


class PreferenceStore(ABC):
    """The instance's preferences as stored: top-level name -> JSON value. It keeps what it is
    given; the rules (names, types, ranges, defaults, key conflicts) are
    ``app.domain.preferences``, checked by the service before anything is written."""

    @abstractmethod
    async def get_all(self) -> dict[str, Any]:
        """Every stored preference (a name never written, or reset, is absent)."""

    @abstractmethod
    async def put(self, values: dict[str, Any]) -> None:
        """Write these preferences (each replaces the stored value of its name), all in one
        unit: all of them or none."""

    @abstractmethod
    async def reset(self, names: Collection[str] | None = None) -> None:
        """Forget the stored value of ``names`` (all of them when ``None``): back to defaults."""


class VersionStore(ABC):
    """Dataset versions (issue 12): rows in the database, folders under ``versions/``. A version
    is built by a task into ``building_folder`` and put in place whole by ``finish``; only then
    does its row say ready. Deleting one never touches the projects' images (its unchanged
    images are hard links: the projects keep their own links)."""

    @abstractmethod
    async def create(
        self,
        name: str,
        recipe: dict[str, Any],
        sources: dict[str, Any],
        *,
        task_id: int | None = None,
    ) -> VersionInfo:
        """Register a version being built. ``Invalid`` for a bad name, ``AlreadyExists`` when
        the name is taken (ignoring case) or its folder already lies in storage."""

    @abstractmethod
    async def get(self, name: str) -> VersionInfo | None:
        """The version (name ignoring case), or ``None``."""

    @abstractmethod
    async def list(self) -> builtins.list[VersionInfo]:
        """Every version, newest first."""

    @abstractmethod
    async def building_folder(self, name: str) -> Path:
        """A fresh, not yet existing folder to build the version in (what an interrupted
        build left there is removed first). ``NotFound``; ``Conflict`` once it is ready."""

    @abstractmethod
    async def finish(
        self, name: str, classes: builtins.list[str], counts: dict[str, Any]
    ) -> VersionInfo:
        """Rename the built folder into place, then mark the version ready with its classes
        and counts. ``NotFound``; ``Conflict`` when it is not building."""

    @abstractmethod
    async def fail(self, name: str, error: str | None) -> None:
        """Remove what the build left and mark the version failed with ``error``; with
        ``error=None`` (cancelled) the row goes too. Quiet when the version is gone."""

    @abstractmethod
    async def delete(self, name: str) -> bool:
        """Delete the row, then (after the commit) the folder. ``False`` if absent."""

    @abstractmethod
    async def sources(self, project: str) -> ProjectSources:
        """What a version takes from ``project``: its classes, and its labelled images on
        disk (accepted boxes; "no objects" images with none) in id order. ``NotFound``."""


@dataclass
class Stores:
    """The stores of one storage backend, and the way to make several calls one unit."""

    dataset: DatasetStore
    image: ImageStore
    label: LabelStore
    model: ModelStore
    session: SessionStore
    task: TaskStore
    storage: StorageStore
    account: AccountStore
    preference: PreferenceStore
    notification: NotificationStore  # task ends for pages, projects' webhooks, deliveries
    version: VersionStore  # dataset versions (issue 12)
    unit_of_work: Callable[[], AbstractAsyncContextManager[UnitOfWork]]
    data_dir: Path
    close: Callable[[], Awaitable[None]]
    disk_reserve: int = 0  # bytes kept free on data_dir's disk (YDC_DISK_RESERVE_MB); 0: off


__all__ = [
    "DatasetStore",
    "ImageStore",
    "LabelStore",
    "ModelStore",
    "PreferenceStore",
    "ProgressCallback",
    "SessionStore",
    "StorageStore",
    "Stores",
    "TaskStore",
    "UnitOfWork",
    "VersionStore",
]
