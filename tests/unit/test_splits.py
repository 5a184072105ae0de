"""The split draw: stable per hash, and close to the ratios over many images."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from app.domain.errors import Invalid
from app.domain.splits import DEFAULT_RATIOS, draw_split, validate_ratios


def test_the_same_bytes_always_draw_the_same_split() -> None:
    digest = hashlib.sha256(b"a photo").hexdigest()
    assert len({draw_split(digest, DEFAULT_RATIOS) for _ in range(10)}) == 1


def test_many_images_follow_the_ratios() -> None:
    drawn = Counter(
        draw_split(hashlib.sha256(str(i).encode()).hexdigest(), DEFAULT_RATIOS)
        for i in range(20_000)
    )
    assert drawn["train"] / 20_000 == pytest.approx(0.8, abs=0.01)
    assert drawn["val"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert drawn["test"] / 20_000 == pytest.approx(0.1, abs=0.01)


def test_a_zero_ratio_split_never_gets_an_image() -> None:
    ratios = {"train": 0.9, "val": 0.1, "test": 0.0}
    drawn = {draw_split(hashlib.sha256(str(i).encode()).hexdigest(), ratios) for i in range(5000)}
    assert drawn == {"train", "val"}
    assert draw_split("f" * 64, ratios) == "val"


@pytest.mark.parametrize(
    "ratios",
    [
        {"train": 0.8, "val": 0.1},
        {"train": 0.8, "val": 0.3, "test": 0.1},
        {"train": -0.1, "val": 1.0, "test": 0.1},
    ],
)
def test_bad_ratios_are_refused(ratios: dict[str, float]) -> None:
    with pytest.raises(Invalid):
        validate_ratios(ratios)
