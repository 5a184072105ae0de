"""Evaluation rules: matching, the confusion matrix adding up to the true boxes, P/R, AP50."""

from __future__ import annotations

import pytest

from app.domain.evaluation import average_precision, evaluate, iou, match_image

NAMES = ["cat", "dog"]


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    assert iou((0.5, 0.5, 0.2, 0.2), (0.5, 0.5, 0.2, 0.2)) == pytest.approx(1.0)
    assert iou((0.2, 0.2, 0.1, 0.1), (0.8, 0.8, 0.1, 0.1)) == 0.0
    # Two unit squares shifted by half: intersection 0.5, union 1.5.
    assert iou((0.5, 0.5, 0.2, 0.2), (0.6, 0.5, 0.2, 0.2)) == pytest.approx(1 / 3)


def test_a_prediction_is_found_wrong_class_or_false_positive_and_leftovers_are_missed() -> None:
    truth = [(0, 0.2, 0.2, 0.2, 0.2), (1, 0.7, 0.7, 0.2, 0.2), (0, 0.5, 0.9, 0.1, 0.1)]
    predictions = [
        (0, 0.9, 0.2, 0.2, 0.2, 0.2),  # found the cat
        (0, 0.8, 0.7, 0.7, 0.2, 0.2),  # a cat where the dog is: wrong class
        (1, 0.7, 0.1, 0.9, 0.1, 0.1),  # nothing there
        (1, 0.1, 0.5, 0.9, 0.1, 0.1),  # below the confidence: ignored
    ]

    mistakes = match_image(truth, predictions)

    assert mistakes.found == [(0, 0)]
    assert mistakes.wrong_class == [(1, 1)]
    assert mistakes.false_positives == [2]
    assert mistakes.missed == [2]
    assert mistakes.any


def test_the_confusion_matrix_columns_add_up_to_the_true_boxes_of_each_class() -> None:
    images = [
        (
            [(0, 0.2, 0.2, 0.2, 0.2), (1, 0.7, 0.7, 0.2, 0.2)],
            [(0, 0.9, 0.2, 0.2, 0.2, 0.2), (0, 0.8, 0.7, 0.7, 0.2, 0.2)],
        ),
        ([(1, 0.5, 0.5, 0.3, 0.3)], [(1, 0.95, 0.5, 0.5, 0.3, 0.3), (0, 0.6, 0.1, 0.1, 0.1, 0.1)]),
        ([], [(1, 0.5, 0.5, 0.5, 0.1, 0.1)]),
        ([(0, 0.4, 0.4, 0.2, 0.2)], []),
    ]

    evaluation, per_image = evaluate(images, NAMES)

    true_per_class = [0, 0]
    for truth, _ in images:
        for box in truth:
            true_per_class[box[0]] += 1
    for c in range(len(NAMES)):
        assert sum(row[c] for row in evaluation.confusion) == true_per_class[c]
    assert evaluation.boxes == 4
    cat, dog = evaluation.classes
    assert (cat.found, cat.missed, cat.false_positives) == (1, 1, 2)
    assert (dog.found, dog.missed, dog.false_positives) == (1, 1, 1)
    assert cat.precision == pytest.approx(1 / 3) and cat.recall == pytest.approx(1 / 2)
    assert dog.precision == pytest.approx(1 / 2) and dog.recall == pytest.approx(1 / 2)
    assert evaluation.confusion[2][1] == 0 and evaluation.confusion[2][0] == 1  # one cat missed
    assert [m.any for m in per_image] == [True, True, True, True]


def test_average_precision_of_perfect_useless_and_mixed_rankings() -> None:
    assert average_precision([(0.9, True), (0.8, True)], 2) == pytest.approx(1.0)
    assert average_precision([(0.9, False), (0.8, False)], 2) == 0.0
    # found, missed, found: recall 0.5 at precision 1, recall 1 at precision 2/3.
    assert average_precision([(0.9, True), (0.8, False), (0.7, True)], 2) == pytest.approx(
        0.5 * 1 + 0.5 * (2 / 3)
    )
    # A class never predicted has AP 0; one with no true boxes has none.
    assert average_precision([], 3) == 0.0


def test_a_perfect_detector_scores_one_everywhere() -> None:
    truth = [(0, 0.3, 0.3, 0.2, 0.2), (1, 0.7, 0.7, 0.2, 0.2)]
    predictions = [(c, 0.99, x, y, w, h) for c, x, y, w, h in truth]

    evaluation, per_image = evaluate([(truth, predictions)], NAMES)

    assert evaluation.map50 == pytest.approx(1.0)
    assert all(s.precision == 1 and s.recall == 1 for s in evaluation.classes)
    assert not per_image[0].any
