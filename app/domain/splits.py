"""How a new image gets its split: drawn from its content hash against the project's ratios, so
the same bytes always land in the same split, on any machine, in any order of upload."""

from __future__ import annotations

from app.domain.errors import Invalid
from app.domain.models import SPLITS

DEFAULT_RATIOS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def validate_ratios(ratios: dict[str, float]) -> dict[str, float]:
    """Ratios for train/val/test: each in [0, 1], summing to 1 (within rounding)."""
    if set(ratios) != set(SPLITS):
        raise Invalid("Split ratios must give train, val and test.")
    if any(not 0 <= r <= 1 for r in ratios.values()):
        raise Invalid("Each split ratio must lie between 0 and 1.")
    if abs(sum(ratios.values()) - 1) > 1e-6:
        raise Invalid(f"Split ratios must add up to 1 (they add up to {sum(ratios.values()):.3f}).")
    return dict(ratios)


def draw_split(sha256: str, ratios: dict[str, float]) -> str:
    """The split the hash draws: its first 64 bits as a fraction of 2**64, against the
    cumulative ratios in train, val, test order."""
    point = int(sha256[:16], 16) / 2**64
    edge = 0.0
    for split in SPLITS:
        edge += ratios.get(split, 0.0)
        if point < edge:
            return split
    return next(s for s in reversed(SPLITS) if ratios.get(s, 0.0) > 0)
