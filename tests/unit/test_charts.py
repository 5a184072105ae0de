"""The training chart: epochs in, SVG out. Well-formed for no epoch, one and many; no NaN; every
coordinate inside its viewBox; a missing value leaves a gap rather than a zero."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from app.web.charts import MAX_DOTS, epoch_loss, training_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    figure = ET.fromstring(markup)  # well-formed XML, or this raises
    assert figure.tag == "figure"
    return figure


def charts(markup: str) -> dict[str, ET.Element]:
    return {svg.get("data-plot", ""): svg for svg in parse(markup).iter(f"{SVG}svg")}


def coordinates(svg: ET.Element) -> list[tuple[float, float]]:
    """Every x, y the SVG draws at: points of lines, dots, grid lines, labels."""
    found = []
    for element in svg.iter():
        for x, y in (("x", "y"), ("cx", "cy"), ("x1", "y1"), ("x2", "y2")):
            if element.get(x) is not None:
                found.append((float(element.get(x, "")), float(element.get(y, ""))))
        for pair in (element.get("points") or "").split():
            px, py = pair.split(",")
            found.append((float(px), float(py)))
    return found


def assert_inside(svg: ET.Element) -> None:
    _, _, width, height = (float(v) for v in svg.get("viewBox", "").split())
    points = coordinates(svg)
    assert points
    for x, y in points:
        assert math.isfinite(x) and math.isfinite(y)
        assert 0 <= x <= width and 0 <= y <= height, (x, y)


def epoch(n: int, loss: float, map50: float) -> dict[str, float]:
    return {"epoch": n, "box_loss": loss, "cls_loss": loss, "dfl_loss": loss, "map50": map50}


def test_no_epoch_draws_empty_axes_that_say_so() -> None:
    markup = training_chart([], 50)
    plots = charts(markup)
    assert list(plots) == ["loss", "map"]
    for svg in plots.values():
        assert svg.find(f"{SVG}title") is not None and svg.find(f"{SVG}desc") is not None
        assert svg.findall(f".//{SVG}polyline") == []
        assert "No epoch has finished yet." in "".join(svg.itertext())
        assert_inside(svg)
    assert "nan" not in markup.lower()


def test_one_epoch_is_a_dot_per_series() -> None:
    plots = charts(training_chart([epoch(1, 1.5, 0.2)], None))
    loss_dots = plots["loss"].findall(f".//{SVG}circle")
    assert [d.get("data-series") for d in loss_dots] == ["loss"]
    assert len(plots["map"].findall(f".//{SVG}circle")) == 1  # mAP50; no mAP50-95 given
    for svg in plots.values():
        assert_inside(svg)


def test_many_epochs_scale_inside_the_viewbox_and_grow_to_the_planned_end() -> None:
    rows = [epoch(n, 3.0 / n, min(1.0, n / 40)) for n in range(1, 31)]
    plots = charts(training_chart(rows, 100, ident="t7"))
    loss_line = plots["loss"].find(f".//{SVG}polyline")
    assert loss_line is not None
    xs = [float(p.split(",")[0]) for p in (loss_line.get("points") or "").split()]
    assert len(xs) == 30 and xs == sorted(xs)
    # 30 of 100 planned epochs: the line covers under a third of the plot's width.
    assert xs[-1] - xs[0] < 0.31 * (308 - 44)
    ys = [float(p.split(",")[1]) for p in (loss_line.get("points") or "").split()]
    assert ys == sorted(ys)  # the loss falls, so the line goes down the picture (y grows)
    for svg in plots.values():
        assert_inside(svg)
        labelled = (svg.get("aria-labelledby") or "").split()
        assert labelled[0].startswith("t7-")


def test_a_long_training_dots_only_its_last_epoch() -> None:
    rows = [epoch(n, 1.0, 0.5) for n in range(1, MAX_DOTS + 12)]
    plots = charts(training_chart(rows, None))
    assert len(plots["loss"].findall(f".//{SVG}circle")) == 1
    assert len((plots["loss"].find(f".//{SVG}polyline").get("points") or "").split()) == len(rows)  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "x"])
def test_a_value_that_is_no_number_leaves_a_gap(bad: object) -> None:
    rows = [epoch(1, 1.0, 0.1), {"epoch": 2, "box_loss": bad, "map50": bad}, epoch(3, 0.5, 0.3)]
    markup = training_chart(rows, 3)
    assert "nan" not in markup.lower() and "inf" not in markup.lower()
    plots = charts(markup)
    assert len(plots["loss"].findall(f".//{SVG}circle")) == 2
    for svg in plots.values():
        assert_inside(svg)


def test_text_is_escaped() -> None:
    markup = training_chart([epoch(1, 1.0, 0.5)], 2, ident='x"><script>')
    assert "<script>" not in markup


def test_the_loss_is_the_sum_of_the_parts_an_epoch_has() -> None:
    assert epoch_loss({"box_loss": 1.0, "cls_loss": 2.0, "dfl_loss": 0.5}) == 3.5
    assert epoch_loss({"box_loss": 1.0}) == 1.0
    assert epoch_loss({"map50": 0.3}) is None
