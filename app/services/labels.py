"""Label and review use cases: an image's labels and suggestions, saving them under the image's
version, adding and importing suggestions, accepting and rejecting them (one image or the whole
project above a confidence threshold), and the review queue's figures.

Every write answers with the image as it is afterwards (its new version, the ids of its labels),
which is what the annotator shows next.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from app.domain.labels import (
    UNKNOWN_CONFIDENCE_RANK,
    ImageLabels,
    SuggestionCount,
    UncertainImage,
    parse_suggestion_lines,
    validate_min_confidence,
)
from app.domain.models import Annotation, ClassInfo, DatasetInfo, ImageFilter, ImageState
from app.domain.stores import Stores
from app.services.projects import get_project

DEFAULT_MIN_CONFIDENCE = 0.5


async def image_labels(stores: Stores, project: str, filename: str) -> ImageLabels:
    """The image with its accepted labels and pending suggestions. ``NotFound``."""
    return await stores.label.image_labels(project, filename)


async def save_labels(
    stores: Stores,
    project: str,
    filename: str,
    labels: list[Annotation],
    *,
    version: int,
    no_objects: bool = False,
    reject: Collection[int] = (),
) -> ImageLabels:
    """Replace the image's labels if it is still at ``version`` (else ``Conflict``): labels with
    the id of a label keep it, with the id of a pending suggestion accept it; ``reject`` names
    suggestions to reject; the other suggestions stay pending."""
    return await stores.label.save(
        project,
        None,
        filename,
        labels,
        expected_version=version,
        no_objects=no_objects,
        reject=reject,
    )


async def add_suggestions(
    stores: Stores, project: str, filename: str, suggestions: list[Annotation]
) -> ImageLabels:
    """Add pending suggestions to the image (its version stays). All or nothing."""
    await stores.label.add_suggestions(project, filename, suggestions)
    return await stores.label.image_labels(project, filename)


async def import_suggestions(stores: Stores, project: str, filename: str, text: str) -> ImageLabels:
    """Add the suggestions of a YOLO label file (``class x y w h [confidence]`` per line,
    source ``import``); ``Invalid`` naming every bad line, and then nothing is added."""
    image = await stores.image.get(project, filename)
    classes = await stores.dataset.get_classes(project)
    suggestions = parse_suggestion_lines(
        text, num_classes=len(classes), width=image.width, height=image.height
    )
    return await add_suggestions(stores, project, image.filename, suggestions)


async def accept_suggestions(
    stores: Stores, project: str, filename: str, ids: Collection[int] | None = None
) -> ImageLabels:
    """Accept these pending suggestions of the image (all of them for ``None``)."""
    await stores.label.accept_suggestions(project, filename, ids)
    return await stores.label.image_labels(project, filename)


async def reject_suggestions(
    stores: Stores, project: str, filename: str, ids: Collection[int] | None = None
) -> ImageLabels:
    """Reject these pending suggestions of the image (all of them for ``None``)."""
    await stores.label.reject_suggestions(project, filename, ids)
    return await stores.label.image_labels(project, filename)


async def suggestion_summary(
    stores: Stores, project: str, min_confidence: float = 0.0
) -> SuggestionCount:
    """How many pending suggestions of the project reach ``min_confidence``, on how many
    images."""
    return await stores.label.suggestion_summary(project, validate_min_confidence(min_confidence))


async def accept_suggestions_above(
    stores: Stores, project: str, min_confidence: float
) -> SuggestionCount:
    """Accept every pending suggestion of the project at ``min_confidence`` or above."""
    threshold = validate_min_confidence(min_confidence)
    return await stores.label.accept_suggestions_above(project, threshold)


@dataclass
class ClassSuggestions:
    """A class (``position`` is its YOLO index) and its pending suggestions."""

    cls: ClassInfo
    suggestions: int


@dataclass
class ReviewQueue:
    """What the review page shows: the project's pending suggestions, the images they are on,
    per class, and the first image to review."""

    project: DatasetInfo
    pending: SuggestionCount
    per_class: list[ClassSuggestions]
    first_filename: str | None
    least_confident: list[UncertainImage] = field(default_factory=list)


LEAST_CONFIDENT_SHOWN = 12


async def review_queue(stores: Stores, project: str) -> ReviewQueue:
    """The project's review queue, with its least confident images first. ``NotFound``."""
    info = await get_project(stores, project)
    pending = await stores.label.suggestion_summary(info.name)
    counts = await stores.label.suggestions_per_class(info.name) if pending.suggestions else {}
    first = None
    if pending.suggestions:
        found = await stores.image.search(
            info.name, ImageFilter(state=ImageState.SUGGESTIONS), limit=1
        )
        first = found[0].filename if found else None
    per_class = [ClassSuggestions(c, counts.get(c.id, 0)) for c in info.class_details]
    uncertain = (
        await stores.label.uncertain_images(info.name, limit=LEAST_CONFIDENT_SHOWN)
        if pending.suggestions
        else []
    )
    return ReviewQueue(info, pending, per_class, first, uncertain)


async def uncertain_neighbours(
    stores: Stores, project: str, filename: str
) -> tuple[str | None, str | None]:
    """The images before and after ``filename`` in the least-confident-first order of the
    review queue. An image with no pending suggestion left (just reviewed) has left the queue:
    nothing before it, and after it the least confident image still waiting. ``NotFound``."""
    image = await stores.image.get(project, filename)
    pending = await stores.label.list_suggestions(project, image.filename)
    if not pending:
        first = await stores.label.uncertain_images(project, limit=1)
        return None, first[0].filename if first else None
    known = [s.confidence for s in pending if s.confidence is not None]
    rank = (min(known) if known else UNKNOWN_CONFIDENCE_RANK, image.id)
    before = await stores.label.uncertain_images(project, before=rank, limit=1)
    after = await stores.label.uncertain_images(project, after=rank, limit=1)
    return (before[0].filename if before else None, after[0].filename if after else None)
