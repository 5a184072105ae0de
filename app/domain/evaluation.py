"""Evaluating a detector on labelled images, pure: matching predictions to true boxes, per-class
precision, recall and AP50, a confusion matrix, and each image's mistakes.

Computed here rather than read from Ultralytics' validator so that every count is traceable:
each true box lands in exactly one cell of its class's column of the confusion matrix (found,
taken for another class, or missed), so the columns add up to the val boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Box = tuple[int, float, float, float, float]  # class, centre x, centre y, width, height (0..1)
Prediction = tuple[int, float, float, float, float, float]  # class, confidence, x, y, w, h

IOU_THRESHOLD = 0.5
CONFIDENCE = 0.25  # predictions below it are not shown as mistakes nor counted in P/R


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two centre/size boxes."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    width = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    height = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = width * height
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class ImageMistakes:
    """What went wrong on one image (indices into its true boxes and predictions)."""

    found: list[tuple[int, int]] = field(default_factory=list)  # (true, predicted)
    wrong_class: list[tuple[int, int]] = field(default_factory=list)  # (true, predicted)
    false_positives: list[int] = field(default_factory=list)  # predicted
    missed: list[int] = field(default_factory=list)  # true

    @property
    def any(self) -> bool:
        return bool(self.wrong_class or self.false_positives or self.missed)


def match_image(
    truth: list[Box],
    predictions: list[Prediction],
    *,
    iou_threshold: float = IOU_THRESHOLD,
    confidence: float = CONFIDENCE,
) -> ImageMistakes:
    """Greedy matching, most confident prediction first: a prediction takes the unmatched true
    box of its class it overlaps most (IoU ≥ threshold); failing that, the unmatched true box of
    another class it overlaps most (a wrong class); failing that, it is a false positive. True
    boxes left over were missed."""
    result = ImageMistakes()
    taken: set[int] = set()
    order = sorted(
        (i for i, p in enumerate(predictions) if p[1] >= confidence),
        key=lambda i: -predictions[i][1],
    )
    for index in order:
        cls, _, x, y, w, h = predictions[index]
        box = (x, y, w, h)
        same = _best(truth, taken, box, iou_threshold, cls, same=True)
        if same is not None:
            taken.add(same)
            result.found.append((same, index))
            continue
        other = _best(truth, taken, box, iou_threshold, cls, same=False)
        if other is not None:
            taken.add(other)
            result.wrong_class.append((other, index))
            continue
        result.false_positives.append(index)
    result.missed = [i for i in range(len(truth)) if i not in taken]
    return result


def _best(
    truth: list[Box],
    taken: set[int],
    box: tuple[float, float, float, float],
    threshold: float,
    cls: int,
    *,
    same: bool,
) -> int | None:
    """The unmatched true box (of ``cls``, or of another class) overlapping ``box`` most."""
    best, best_iou = None, threshold
    for i, (true_cls, x, y, w, h) in enumerate(truth):
        if i in taken or (true_cls == cls) != same:
            continue
        overlap = iou(box, (x, y, w, h))
        if overlap >= best_iou:
            best, best_iou = i, overlap
    return best


@dataclass
class ClassScore:
    name: str
    boxes: int  # true boxes of the class
    found: int
    false_positives: int
    missed: int
    precision: float | None
    recall: float | None
    ap50: float | None


@dataclass
class Evaluation:
    classes: list[ClassScore]
    # matrix[predicted][true]; index len(names) is "background" (nothing there / nothing found)
    confusion: list[list[int]]
    images: int
    boxes: int
    map50: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": [vars(c) for c in self.classes],
            "confusion": self.confusion,
            "images": self.images,
            "boxes": self.boxes,
            "map50": self.map50,
        }


def evaluate(
    images: list[tuple[list[Box], list[Prediction]]],
    names: list[str],
    *,
    iou_threshold: float = IOU_THRESHOLD,
    confidence: float = CONFIDENCE,
) -> tuple[Evaluation, list[ImageMistakes]]:
    """Scores over all images and the mistakes of each (same order). AP50 uses every
    prediction (any confidence), P/R and the confusion matrix those at ``confidence``."""
    n = len(names)
    background = n
    confusion = [[0] * (n + 1) for _ in range(n + 1)]
    found, false_pos, missed, boxes = [0] * n, [0] * n, [0] * n, [0] * n
    ranked: list[list[tuple[float, bool]]] = [[] for _ in range(n)]
    per_image: list[ImageMistakes] = []
    for truth, predictions in images:
        for true_box in truth:
            boxes[true_box[0]] += 1
        mistakes = match_image(
            truth, predictions, iou_threshold=iou_threshold, confidence=confidence
        )
        per_image.append(mistakes)
        for t, p in mistakes.found:
            confusion[predictions[p][0]][truth[t][0]] += 1
            found[truth[t][0]] += 1
        for t, p in mistakes.wrong_class:
            confusion[predictions[p][0]][truth[t][0]] += 1
            missed[truth[t][0]] += 1
            false_pos[predictions[p][0]] += 1
        for p in mistakes.false_positives:
            confusion[predictions[p][0]][background] += 1
            false_pos[predictions[p][0]] += 1
        for t in mistakes.missed:
            confusion[background][truth[t][0]] += 1
            missed[truth[t][0]] += 1
        for cls, hits in _ranked_hits(truth, predictions, iou_threshold).items():
            ranked[cls].extend(hits)
    scores: list[ClassScore] = []
    for c, name in enumerate(names):
        predicted = found[c] + false_pos[c]
        scores.append(
            ClassScore(
                name=name,
                boxes=boxes[c],
                found=found[c],
                false_positives=false_pos[c],
                missed=missed[c],
                precision=found[c] / predicted if predicted else None,
                recall=found[c] / boxes[c] if boxes[c] else None,
                ap50=average_precision(ranked[c], boxes[c]) if boxes[c] else None,
            )
        )
    aps = [s.ap50 for s in scores if s.ap50 is not None]
    evaluation = Evaluation(
        classes=scores,
        confusion=confusion,
        images=len(images),
        boxes=sum(boxes),
        map50=sum(aps) / len(aps) if aps else None,
    )
    return evaluation, per_image


def _ranked_hits(
    truth: list[Box], predictions: list[Prediction], threshold: float
) -> dict[int, list[tuple[float, bool]]]:
    """Per class, each prediction's confidence and whether it found a true box of its class
    (greedy by confidence, each true box found once): what AP is computed from."""
    hits: dict[int, list[tuple[float, bool]]] = {}
    taken: set[int] = set()
    for cls, conf, x, y, w, h in sorted(predictions, key=lambda p: -p[1]):
        match = _best(truth, taken, (x, y, w, h), threshold, cls, same=True)
        if match is not None:
            taken.add(match)
        hits.setdefault(cls, []).append((conf, match is not None))
    return hits


def average_precision(hits: list[tuple[float, bool]], positives: int) -> float:
    """Area under the precision-recall curve with precision made monotone (all-point
    interpolation, as VOC 2010+ and Ultralytics' continuous method)."""
    if positives <= 0:
        return 0.0
    ordered = sorted(hits, key=lambda h: -h[0])
    precisions: list[float] = []
    recalls: list[float] = []
    tp = fp = 0
    for _, hit in ordered:
        tp, fp = tp + hit, fp + (not hit)
        precisions.append(tp / (tp + fp))
        recalls.append(tp / positives)
    area = 0.0
    previous_recall = 0.0
    best_after = 0.0
    envelope = [0.0] * len(precisions)
    for i in range(len(precisions) - 1, -1, -1):
        best_after = max(best_after, precisions[i])
        envelope[i] = best_after
    for recall, precision in zip(recalls, envelope, strict=True):
        area += (recall - previous_recall) * precision
        previous_recall = recall
    return area


__all__ = [
    "CONFIDENCE",
    "IOU_THRESHOLD",
    "ClassScore",
    "Evaluation",
    "ImageMistakes",
    "average_precision",
    "evaluate",
    "iou",
    "match_image",
]
