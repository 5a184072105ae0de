"""A training's chart, pure: epochs in, an SVG string out (server-rendered, no script library).

Two plots, each its own ``<svg>`` in one ``<figure>``: the training loss per epoch (box + cls +
dfl, or whichever of them an epoch has) and mAP50 / mAP50-95 on a fixed 0…1 scale. They sit side
by side where there is room and one above the other in a narrow column. Styling is in SVG
presentation attributes (and a few inline styles, which the content policy allows), so the chart
looks right wherever the task panel is swapped in, with or without a page's stylesheet. Every
coordinate is finite and inside the ``viewBox``: a missing or non-finite value leaves a gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

WIDTH, HEIGHT = 320, 210  # one plot's viewBox
PLOT_TOP, PLOT_BOTTOM = 30, 172  # y of a plot's top and bottom edges
PLOT_LEFT, PLOT_RIGHT = 44, 308
LOSS_PARTS = ("box_loss", "cls_loss", "dfl_loss")
MAX_DOTS = 60
INK, MUTED, GRID = "#1d2330", "#5b6473", "#e6eaf0"


@dataclass(frozen=True)
class Series:
    """One line: its legend label, colour and the (epoch, value) points it has."""

    label: str
    colour: str
    points: list[tuple[int, float]]


@dataclass(frozen=True)
class Plot:
    """One of the two plots: a title, a y range and its lines."""

    title: str
    left: float
    right: float
    y_max: float
    series: list[Series] = field(default_factory=list)
    percent: bool = False


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def epoch_loss(row: dict[str, Any]) -> float | None:
    """The training loss of one epoch: box + cls + dfl (the parts it has), else ``None``."""
    parts = [_number(row.get(key)) for key in LOSS_PARTS]
    found = [p for p in parts if p is not None]
    return sum(found) if found else None


def _series(epochs: Sequence[dict[str, Any]], label: str, colour: str, value: Any) -> Series:
    points = []
    for row in epochs:
        epoch = _number(row.get("epoch"))
        found = value(row)
        if epoch is not None and found is not None:
            points.append((int(epoch), found))
    return Series(label, colour, points)


def _nice_max(value: float) -> float:
    """A round upper bound at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def plots(epochs: Sequence[dict[str, Any]]) -> list[Plot]:
    """The loss plot and the mAP plot of ``epochs`` (rows of ``training_epochs``)."""
    loss = _series(epochs, "loss", "#c0392b", epoch_loss)
    val_loss = _series(
        epochs,
        "val loss",
        "#e59866",
        lambda row: epoch_loss({k[4:]: v for k, v in row.items() if k.startswith("val_")}),
    )
    losses = [s for s in (loss, val_loss) if s.points]
    highest = max((v for s in losses for _, v in s.points), default=0.0)
    map50 = _series(epochs, "mAP50", "#2f6fdf", lambda row: _number(row.get("map50")))
    map50_95 = _series(epochs, "mAP50-95", "#2e7d32", lambda row: _number(row.get("map50_95")))
    return [
        Plot("Loss", PLOT_LEFT, PLOT_RIGHT, y_max=_nice_max(highest), series=losses or [loss]),
        Plot("mAP", PLOT_LEFT, PLOT_RIGHT, y_max=1.0, series=[map50, map50_95], percent=True),
    ]


def _tick(value: float) -> str:
    return f"{value:g}"


def training_chart(
    epochs: Sequence[dict[str, Any]], total_epochs: int | None = None, *, ident: str = "chart"
) -> str:
    """The SVGs of a training's epochs in a ``<figure>``; the x axis runs to ``total_epochs``
    (the planned epochs) so the lines grow to the right while it trains. ``ident`` prefixes
    the ids of their titles and descriptions (unique on a page)."""
    numbers = (_number(row.get("epoch")) for row in epochs)
    last = max((int(n) for n in numbers if n is not None), default=0)
    x_max = max(last, total_epochs or 0, 1)
    x_min = 1 if x_max > 1 else 0
    desc = _describe(epochs)
    ident = escape(ident)
    parts = [
        f'<figure class="training-charts" id="{ident}" style="display: flex; flex-wrap: wrap; '
        'gap: .5rem 1rem; margin: 0">'
    ]
    for plot in plots(epochs):
        key = f"{ident}-{plot.title.lower()}"
        parts.append(
            f'<svg class="training-chart" data-plot="{escape(plot.title.lower())}" '
            f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" style="flex: 1 1 16rem; max-width: 26rem; height: auto" '
            f'role="img" aria-labelledby="{key}-title {key}-desc" '
            'font-family="system-ui, sans-serif" font-size="12">'
            f'<title id="{key}-title">{escape(plot.title)} per epoch</title>'
            f'<desc id="{key}-desc">{escape(desc)}</desc>'
        )
        parts.extend(_plot(plot, x_min, x_max))
        if not epochs:
            parts.append(
                f'<text x="{(PLOT_LEFT + PLOT_RIGHT) / 2:g}" y="{(PLOT_TOP + PLOT_BOTTOM) / 2:g}" '
                f'text-anchor="middle" fill="{MUTED}">No epoch has finished yet.</text>'
            )
        parts.append("</svg>")
    parts.append("</figure>")
    return "".join(parts)


def _describe(epochs: Sequence[dict[str, Any]]) -> str:
    if not epochs:
        return "No epoch has finished yet."
    row = epochs[-1]
    said = [f"Epoch {row.get('epoch')}"]
    loss = epoch_loss(row)
    if loss is not None:
        said.append(f"loss {loss:.3f}")
    for key, name in (("map50", "mAP50"), ("map50_95", "mAP50-95")):
        value = _number(row.get(key))
        if value is not None:
            said.append(f"{name} {value:.3f}")
    return f"{len(epochs)} epochs. Last: " + ", ".join(said) + "."


def _plot(plot: Plot, x_min: int, x_max: int) -> list[str]:
    width = plot.right - plot.left
    height = PLOT_BOTTOM - PLOT_TOP

    def x_of(epoch: int) -> float:
        span = x_max - x_min
        share = (epoch - x_min) / span if span else 0.5
        return round(plot.left + min(max(share, 0.0), 1.0) * width, 1)

    def y_of(value: float) -> float:
        share = min(max(value / plot.y_max, 0.0), 1.0)
        return round(PLOT_BOTTOM - share * height, 1)

    out = [
        "<g>",
        f'<text x="{plot.left:g}" y="14" font-weight="600" fill="{INK}">'
        f"{escape(plot.title)}</text>",
    ]
    for step in range(5):  # horizontal grid lines and y labels at 0, ¼, ½, ¾, 1 of the range
        value = plot.y_max * step / 4
        y = y_of(value)
        label = f"{value * 100:.0f}%" if plot.percent else _tick(round(value, 3))
        out.append(
            f'<line x1="{plot.left:g}" y1="{y:g}" x2="{plot.right:g}" y2="{y:g}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{plot.left - 6:g}" y="{y + 4:g}" text-anchor="end" fill="{MUTED}" '
            f'font-size="11">{label}</text>'
        )
    out.append(
        f'<line x1="{plot.left:g}" y1="{PLOT_BOTTOM}" x2="{plot.right:g}" y2="{PLOT_BOTTOM}" '
        f'stroke="{MUTED}"/>'
    )
    for epoch in sorted({x_min, x_max, (x_min + x_max) // 2}):
        out.append(
            f'<text x="{x_of(epoch):g}" y="{PLOT_BOTTOM + 14}" text-anchor="middle" '
            f'fill="{MUTED}" font-size="11">{epoch}</text>'
        )
    out.append(
        f'<text x="{plot.left + width / 2:g}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'fill="{MUTED}" font-size="11">epoch</text>'
    )
    legend_x = plot.left + 40.0
    for series in plot.series:
        out.append(
            f'<line x1="{legend_x:g}" y1="10" x2="{legend_x + 14:g}" y2="10" '
            f'stroke="{series.colour}" stroke-width="3"/>'
        )
        out.append(
            f'<text x="{legend_x + 18:g}" y="14" fill="{INK}" font-size="12">'
            f"{escape(series.label)}</text>"
        )
        legend_x += 30 + 7.5 * len(series.label)
        if not series.points:
            continue
        coords = " ".join(f"{x_of(e):g},{y_of(v):g}" for e, v in series.points)
        out.append(
            f'<polyline class="chart-line" data-series="{escape(series.label)}" fill="none" '
            f'stroke="{series.colour}" stroke-width="2" stroke-linejoin="round" '
            f'points="{coords}"/>'
        )
        # A dot per epoch while they can be told apart; a long training dots its last only.
        dotted = series.points if len(series.points) <= MAX_DOTS else series.points[-1:]
        for epoch, value in dotted:
            out.append(
                f'<circle class="chart-point" data-series="{escape(series.label)}" '
                f'cx="{x_of(epoch):g}" cy="{y_of(value):g}" r="2.5" fill="{series.colour}">'
                f"<title>{escape(series.label)}, epoch {epoch}: {_fmt_value(value, plot)}"
                "</title></circle>"
            )
    out.append("</g>")
    return out


def _fmt_value(value: float, plot: Plot) -> str:
    return f"{value * 100:.1f}%" if plot.percent else f"{value:.3f}"


__all__ = ["Plot", "Series", "epoch_loss", "plots", "training_chart"]
