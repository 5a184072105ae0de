"""JSON shapes of the API (requests ``…Create``/``…Update``, responses ``…Out``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, FiniteFloat, StrictInt

from app.domain.labels import ImageLabels
from app.domain.models import (
    Annotation,
    ClassBoxes,
    ClassInfo,
    ClassUsage,
    DatasetHealth,
    DatasetInfo,
    ImageInfo,
    IngestResult,
    LabelSource,
    NearDuplicateGroup,
    SplitHealth,
    TaskInfo,
)
from app.services.images import MAX_BULK
from app.web.urls import image_url, thumb_url


class ProjectCreate(BaseModel):
    name: str = Field(description="Letters, digits, - and _; at most 64 characters.")
    classes: list[str] = Field(default_factory=list, description="Class names in YOLO order.")
    description: str = Field("", max_length=2000)
    split_ratios: dict[Literal["train", "val", "test"], float] | None = Field(
        None,
        description="train, val and test, adding up to 1; left out: the default ratios of "
        "the preferences (GET /api/v1/preferences).",
    )


class ClassesUpdate(BaseModel):
    classes: list[str] = Field(description="The full ordered class list.")


class ClassCreate(BaseModel):
    name: str = Field(description="Unique in the project, ignoring case; one line.")
    colour: str | None = Field(
        None, description="``#rrggbb``; a distinct one is picked if left out."
    )


class ClassUpdate(BaseModel):
    """Each field given is applied (rename, recolour, move); the others stay as they are."""

    name: str | None = Field(None, description="The new name (labels keep pointing at the class).")
    colour: str | None = Field(None, description="The new ``#rrggbb`` colour.")
    index: StrictInt | None = Field(  # a JSON integer: false or "1" is no index
        None,
        ge=0,
        le=2**63 - 1,
        description="The new YOLO index (0-based; past the end means last). Label files of the "
        "images the shift touches are rewritten.",
    )


class ClassMerge(BaseModel):
    into: int = Field(ge=1, le=2**63 - 1, description="The id of the class that takes the labels.")


class ClassUsageOut(BaseModel):
    """Boxes and suggestions of a class, and the images that would be left with no box."""

    labels: int = Field(description="Accepted boxes.")
    suggestions: int = Field(description="Pending suggestions.")
    images_left_empty: int = Field(description="Images whose only accepted boxes are its.")

    @classmethod
    def of(cls, usage: ClassUsage) -> ClassUsageOut:
        return cls.model_validate(usage, from_attributes=True)


class ClassOut(BaseModel):
    id: int
    index: int
    name: str
    colour: str
    prompts: list[str]

    @classmethod
    def of(cls, info: ClassInfo) -> ClassOut:
        return cls(
            id=info.id,
            index=info.position,
            name=info.name,
            colour=info.colour,
            prompts=info.prompts,
        )


class ProjectOut(BaseModel):
    name: str
    description: str
    classes: list[ClassOut]
    num_images: dict[str, int]
    created_at: float
    modified_at: float

    @classmethod
    def of(cls, info: DatasetInfo) -> ProjectOut:
        return cls(
            name=info.name,
            description=info.description,
            classes=[ClassOut.of(c) for c in info.class_details],
            num_images=info.num_images,
            created_at=info.created_at,
            modified_at=info.modified_at,
        )


class ExportRequest(BaseModel):
    """Options of an export; both optional (checked by ``start_export``, 422 when unknown)."""

    splits: list[str] | None = Field(
        default=None, max_length=3, description="Any of train, val, test; default all."
    )
    format: str | None = Field(
        default=None, max_length=32, description="ultralytics (default), yolo11 or coco."
    )


class TaskOut(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    project: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None

    @classmethod
    def of(cls, info: TaskInfo) -> TaskOut:
        return cls(
            id=info.id,
            kind=info.kind,
            status=info.status,
            progress=info.progress,
            message=info.message,
            project=info.dataset,
            result=info.result,
            error=info.error,
            attempts=info.attempts,
            max_attempts=info.max_attempts,
            cancel_requested=info.cancel_requested,
            created_at=info.created_at,
            started_at=info.started_at,
            finished_at=info.finished_at,
            heartbeat_at=info.heartbeat_at,
        )


SplitName = Literal["train", "val", "test"]


class ImageOut(BaseModel):
    """One image of the grid; ``url`` and ``thumb_url`` are static ``/media`` URLs."""

    id: int = Field(description="Keyset position: what ``cursor`` takes.")
    filename: str
    split: str
    width: int = Field(description="Upright width in pixels (EXIF orientation applied).")
    height: int = Field(description="Upright height in pixels.")
    size_bytes: int
    labelled: bool = Field(description='Has an accepted box or is marked "no objects".')
    no_objects: bool
    missing: bool = Field(description="Its file is gone from disk.")
    split_pinned: bool = Field(description="Moved by hand: a rebalance leaves it where it is.")
    version: int
    sha256: str
    url: str
    thumb_url: str

    @classmethod
    def of(cls, info: ImageInfo) -> ImageOut:
        return cls(
            id=info.id,
            filename=info.filename,
            split=info.split,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            labelled=info.has_labels,
            no_objects=info.no_objects,
            missing=info.missing,
            split_pinned=info.split_pinned,
            version=info.version,
            sha256=info.sha256,
            url=image_url(info),
            thumb_url=thumb_url(info),
        )


class ImagePageOut(BaseModel):
    items: list[ImageOut]
    next_cursor: int | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page."
    )
    count: int = Field(description="How many images match the filter in all.")


class ImagesMove(BaseModel):
    filenames: list[str] = Field(min_length=1, max_length=MAX_BULK)
    split: SplitName


class ImagesDelete(BaseModel):
    filenames: list[str] = Field(min_length=1, max_length=MAX_BULK)


class ImagesMovedOut(BaseModel):
    moved: int = Field(description="How many images changed split (all given are pinned).")


class ImagesDeletedOut(BaseModel):
    deleted: int


class IngestResultOut(BaseModel):
    original_name: str = Field(description="The name as uploaded (``zip/member`` inside a zip).")
    status: Literal["stored", "duplicate", "refused"]
    filename: str | None = Field(
        None, description="The stored name (stored), or the existing image's (duplicate)."
    )
    split: str | None = None
    reason: str | None = Field(
        None, description="Why it was refused, or the existing name of a duplicate."
    )

    @classmethod
    def of(cls, result: IngestResult) -> IngestResultOut:
        return cls.model_validate(result, from_attributes=True)


class UploadTotals(BaseModel):
    stored: int
    duplicate: int
    refused: int


class UploadOut(BaseModel):
    results: list[IngestResultOut]
    totals: UploadTotals


class SplitHealthOut(BaseModel):
    """How far the images of a split (or of all, ``"all"``) are labelled."""

    split: str
    images: int
    labelled: int = Field(description='Accepted boxes or marked "no objects".')
    unlabelled: int = Field(description="Neither (pending suggestions alone leave it unlabelled).")
    no_objects: int
    with_suggestions: int = Field(description="Images with pending suggestions to review.")
    missing: int = Field(description="Images whose file is gone from disk.")

    @classmethod
    def of(cls, health: SplitHealth) -> SplitHealthOut:
        return cls(
            split=health.split,
            images=health.images,
            labelled=health.labelled,
            unlabelled=health.unlabelled,
            no_objects=health.no_objects,
            with_suggestions=health.with_suggestions,
            missing=health.missing,
        )


class ClassBoxesOut(BaseModel):
    id: int
    index: int
    name: str
    colour: str
    boxes: int = Field(description="Accepted boxes of this class.")

    @classmethod
    def of(cls, info: ClassBoxes) -> ClassBoxesOut:
        return cls(
            id=info.id, index=info.position, name=info.name, colour=info.colour, boxes=info.boxes
        )


class NearDuplicateGroupOut(BaseModel):
    size: int = Field(description="Images in the group.")
    splits: list[SplitName] = Field(description="The splits its images are in.")
    spans_splits: bool = Field(description="In more than one split: train/val leakage.")
    members: list[ImageOut] = Field(description="The first few (every split of the group).")

    @classmethod
    def of(cls, group: NearDuplicateGroup) -> NearDuplicateGroupOut:
        return cls(
            size=group.size,
            splits=list(group.splits),
            spans_splits=group.spans_splits,
            members=[ImageOut.of(m) for m in group.members],
        )


class NearDuplicatesOut(BaseModel):
    groups: int = Field(description="Near-duplicate groups (perceptual hashes a few bits apart).")
    images: int = Field(description="Images in those groups.")
    leaking_groups: int = Field(description="Groups with images in more than one split.")
    leaking_images: int
    shown: list[NearDuplicateGroupOut] = Field(
        description="The first groups: those spanning splits first, then the biggest."
    )


class DatasetHealthOut(BaseModel):
    project: str
    splits: list[SplitHealthOut] = Field(description="train, val, test.")
    total: SplitHealthOut
    classes: list[ClassBoxesOut] = Field(description="In class (YOLO index) order.")
    boxes: int = Field(description="Accepted boxes in all.")
    exact_duplicates: int = Field(
        description="Stored copies of a file beyond its first: always 0, as the same bytes are "
        "never stored twice in a project."
    )
    unhashed: int = Field(description="Images without a perceptual hash (never grouped).")
    near_duplicates: NearDuplicatesOut

    @classmethod
    def of(cls, health: DatasetHealth) -> DatasetHealthOut:
        return cls(
            project=health.dataset,
            splits=[SplitHealthOut.of(s) for s in health.splits],
            total=SplitHealthOut.of(health.total),
            classes=[ClassBoxesOut.of(c) for c in health.classes],
            boxes=health.boxes,
            exact_duplicates=health.exact_duplicates,
            unhashed=health.unhashed,
            near_duplicates=NearDuplicatesOut(
                groups=health.near_duplicate_groups,
                images=health.near_duplicate_images,
                leaking_groups=health.leaking_groups,
                leaking_images=health.leaking_images,
                shown=[NearDuplicateGroupOut.of(g) for g in health.groups],
            ),
        )


# --- labels and suggestions (app/web/api_labels.py) --------------------------------------------

MAX_BOXES = 10_000  # boxes in one save or one batch of suggestions
MAX_LABEL_ID = 2**63 - 1
# Strict: ``true`` is not class 1, nor ``1.5`` a version. Finite: NaN and infinity are refused.
LabelId = Annotated[StrictInt, Field(ge=1, le=MAX_LABEL_ID)]
ClassIndex = Annotated[
    StrictInt, Field(ge=0, le=MAX_LABEL_ID, description="The class's YOLO index (its position).")
]
Centre = Annotated[FiniteFloat, Field(ge=0, le=1, description="Fraction of the upright image.")]
Extent = Annotated[FiniteFloat, Field(gt=0, le=1, description="Fraction of the upright image.")]
Confidence = Annotated[FiniteFloat, Field(ge=0, le=1)]


class BoxOut(BaseModel):
    """A label or suggestion: normalised centre and size in the upright image."""

    id: int
    class_id: int = Field(description="The class's YOLO index (its position).")
    x: float
    y: float
    width: float
    height: float
    source: str = Field(description="manual, model, prompt or import.")
    confidence: float | None
    model: str | None = Field(description="The model that suggested it, if any.")

    @classmethod
    def of(cls, ann: Annotation) -> BoxOut:
        assert ann.id is not None  # boxes read back from the store always have one
        return cls(
            id=ann.id,
            class_id=ann.class_id,
            x=ann.x,
            y=ann.y,
            width=ann.width,
            height=ann.height,
            source=ann.source,
            confidence=ann.confidence,
            model=ann.model,
        )


class ImageLabelsOut(BaseModel):
    """An image's accepted labels and pending suggestions, and the version a save must send."""

    filename: str
    split: str
    width: int = Field(description="Upright width in pixels.")
    height: int = Field(description="Upright height in pixels.")
    version: int = Field(description="Send it back with the next save (409 when stale).")
    no_objects: bool
    labels: list[BoxOut] = Field(description="Accepted labels, in id order.")
    suggestions: list[BoxOut] = Field(description="Pending suggestions, in id order.")

    @classmethod
    def of(cls, found: ImageLabels) -> ImageLabelsOut:
        image = found.image
        return cls(
            filename=image.filename,
            split=image.split,
            width=image.width,
            height=image.height,
            version=image.version,
            no_objects=image.no_objects,
            labels=[BoxOut.of(a) for a in found.labels],
            suggestions=[BoxOut.of(a) for a in found.suggestions],
        )


class LabelIn(BaseModel):
    id: LabelId | None = Field(
        None,
        description="A label's id keeps it (source, model, confidence); a pending suggestion's "
        "id accepts it; none for a new manual label.",
    )
    class_id: ClassIndex
    x: Centre
    y: Centre
    width: Extent
    height: Extent

    def annotation(self) -> Annotation:
        return Annotation(self.class_id, self.x, self.y, self.width, self.height, id=self.id)


class LabelsUpdate(BaseModel):
    """The image's whole label set, saved if ``version`` is still the image's."""

    version: Annotated[StrictInt, Field(ge=0, le=MAX_LABEL_ID)] = Field(
        description="The version the labels were loaded at (required)."
    )
    labels: list[LabelIn] = Field(max_length=MAX_BOXES)
    no_objects: bool = Field(
        False, description="Mark as a negative example (no labels allowed); rejects suggestions."
    )
    reject: list[LabelId] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Pending suggestions to reject; those neither here nor in labels stay.",
    )


class SuggestionIn(BaseModel):
    class_id: ClassIndex
    x: Centre
    y: Centre
    width: Extent
    height: Extent
    confidence: Confidence | None = None
    model: str | None = Field(
        None, max_length=64, description="A model of the project; source is then ``model``."
    )

    def annotation(self) -> Annotation:
        source = LabelSource.MODEL if self.model else LabelSource.IMPORT
        return Annotation(
            self.class_id,
            self.x,
            self.y,
            self.width,
            self.height,
            source=source.value,
            confidence=self.confidence,
            model=self.model or None,
        )


class SuggestionsCreate(BaseModel):
    suggestions: list[SuggestionIn] = Field(max_length=MAX_BOXES)


class SuggestionSummaryOut(BaseModel):
    suggestions: int = Field(description="Pending suggestions at or above the threshold.")
    images: int = Field(description="Images they are on.")


class SuggestionsAccept(BaseModel):
    min_confidence: Confidence = Field(
        description="Accept every pending suggestion at or above this confidence (at 0, also "
        "those of unknown confidence)."
    )


class SuggestionsAcceptedOut(BaseModel):
    accepted: int
    images: int = Field(description="Images whose labels changed (each got a new version).")
