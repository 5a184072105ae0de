"""The annotator in a real browser (issue 5's acceptance): drawing, class keys, handles, delete
and undo, saving on the way to the next image; copying the previous image's boxes, pasting
onto another image and "no objects"; reviewing suggestions with the keyboard; a stale save
(409) that offers a reload; the key list; the phone size; and the figures for an image with
500 boxes.

The test images are smaller than the canvas, so the annotator shows them at 100 %: one screen
pixel is one image pixel, and a mouse position is an image position plus the image's corner.
"""

from __future__ import annotations

import io
import itertools
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from app.domain.models import Annotation
from tests.contract.support import with_exif_orientation
from tests.e2e.support import LiveServer, api, label_file, label_lines, seed_image, shoot

Rect = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@pytest.fixture(autouse=True)
def desktop(page: Page) -> Iterator[None]:
    """The desktop size the annotator is made for (a test may switch to the phone's)."""
    page.set_viewport_size({"width": 1280, "height": 800})
    yield


@dataclass
class Stage:
    """Where the image's pixel (0, 0) is on the screen, at 100 %."""

    left: float
    top: float

    def at(self, x: float, y: float) -> tuple[float, float]:
        return self.left + x, self.top + y


def open_annotator(page: Page, project: str, filename: str, query: str = "") -> Stage:
    page.goto(f"/projects/{project}/annotate/{filename}" + (f"?{query}" if query else ""))
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    return stage_of(page)


def stage_of(page: Page) -> Stage:
    """The image's corner: the annotator centres an image it shows at 100 % on whole pixels."""
    expect(page.locator("#ann-zoom")).to_have_text("100%")
    left, top = page.evaluate(
        """() => {
            const data = JSON.parse(document.getElementById("annotator-data").textContent);
            const r = document.getElementById("ann-canvas").getBoundingClientRect();
            const cw = Math.floor(r.width), ch = Math.floor(r.height);
            return [r.left + Math.round((cw - data.width) / 2),
                    r.top + Math.round((ch - data.height) / 2)];
        }"""
    )
    return Stage(left, top)


def drag(page: Page, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def draw(page: Page, stage: Stage, box: Rect) -> None:
    drag(page, stage.at(box[0], box[1]), stage.at(box[2], box[3]))


def click(page: Page, stage: Stage, x: float, y: float) -> None:
    page.mouse.click(*stage.at(x, y))


def wait_saved(page: Page) -> None:
    expect(page.locator("#ann-status")).to_have_attribute("data-state", "saved")


def pixels(ann: Annotation, width: int, height: int) -> Rect:
    return (
        (ann.x - ann.width / 2) * width,
        (ann.y - ann.height / 2) * height,
        (ann.x + ann.width / 2) * width,
        (ann.y + ann.height / 2) * height,
    )


def from_line(line: str) -> Annotation:
    index, x, y, w, h = line.split()
    return Annotation(int(index), float(x), float(y), float(w), float(h))


def assert_boxes(
    found: list[Annotation], expected: Sequence[tuple[int, Rect]], width: int, height: int
) -> None:
    """``found`` holds exactly the ``expected`` boxes (class, pixels), each within one pixel."""
    got = sorted((a.class_id, pixels(a, width, height)) for a in found)
    want = sorted(expected)
    assert len(got) == len(want), (got, want)
    for (got_class, got_rect), (want_class, want_rect) in zip(got, want, strict=True):
        assert got_class == want_class, (got, want)
        assert all(abs(g - w) <= 1 for g, w in zip(got_rect, want_rect, strict=True)), (got, want)


def create_project(live: LiveServer, name: str, classes: list[str]) -> None:
    live.run(live.stores.dataset.create(name, classes))


# --- drawing and editing ----------------------------------------------------------------------


@pytest.mark.e2e
def test_draw_three_boxes_change_a_class_resize_delete_undo_then_next_and_back(
    live: LiveServer, page: Page
) -> None:
    project = "orchard"
    create_project(live, project, ["apple", "pear", "plum"])
    one = seed_image(live, project, "one.png", [], seed=1, size=(200, 150))
    seed_image(live, project, "two.png", [], seed=2, size=(200, 150))

    stage = open_annotator(page, project, one)
    expect(page.locator("#ann-current-name")).to_have_text("apple")
    a, b, c = (10, 10, 60, 50), (80, 20, 140, 70), (30, 90, 110, 140)
    for box in (a, b, c):
        draw(page, stage, box)
    boxes = page.locator("#ann-boxes li")
    expect(boxes).to_have_count(3)
    expect(page.locator("#ann-boxes li[aria-selected=true]")).to_have_count(1)  # the last drawn

    click(page, stage, 110, 45)  # select b
    page.keyboard.press("2")  # pear
    expect(page.locator("#ann-boxes li[data-class-id='1']")).to_have_count(1)
    expect(page.locator("#ann-current-name")).to_have_text("pear")

    click(page, stage, 70, 115)  # select c, then pull its bottom-right handle
    drag(page, stage.at(110, 140), stage.at(120, 146))

    click(page, stage, 35, 30)  # select a and delete it
    page.keyboard.press("Delete")
    expect(boxes).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(boxes).to_have_count(3)
    page.keyboard.press("Control+y")  # redo the delete, and undo it again
    expect(boxes).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(boxes).to_have_count(3)
    expect(page.locator("#ann-status")).to_have_attribute("data-state", "dirty")
    shoot(page, "annotator")

    page.keyboard.press("d")  # saves, then the next image
    page.wait_for_url("**/annotate/two.png")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    page.keyboard.press("a")
    page.wait_for_url(f"**/annotate/{one}")
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "3")

    expected = [(0, a), (1, b), (0, (30, 90, 120, 146))]
    assert_boxes(live.run(live.stores.label.load(project, "train", one)), expected, 200, 150)
    assert_boxes([from_line(x) for x in label_lines(live, project, one)], expected, 200, 150)
    # The page shows what was saved: the boxes listed in the saved classes.
    classes = boxes.evaluate_all("els => els.map(e => e.dataset.classId).sort()")
    assert classes == ["0", "0", "1"]


@pytest.mark.e2e
def test_a_box_under_one_pixel_is_refused_and_boxes_stay_inside_the_image(
    live: LiveServer, page: Page
) -> None:
    project = "edges"
    create_project(live, project, ["mark"])
    name = seed_image(live, project, "edge.png", [], seed=3, size=(120, 90))

    stage = open_annotator(page, project, name)
    page.keyboard.press("w")  # draw mode: the next drag draws
    drag(page, stage.at(40, 40), stage.at(40.4, 60))  # 0.4 px wide
    expect(page.locator("#ann-message")).to_contain_text("at least one pixel")
    expect(page.locator("#ann-boxes li")).to_have_count(0)

    draw(page, stage, (-30, -20, 50, 40))  # starts outside: clamped to the corner
    drag(page, stage.at(25, 20), stage.at(400, 400))  # moved far away: stops at the edge
    expect(page.locator("#ann-status")).to_have_attribute("data-state", "dirty")
    wait_saved(page)  # saved by itself after a moment

    expected = [(0, (70, 50, 120, 90))]
    assert_boxes(live.run(live.stores.label.load(project, "train", name)), expected, 120, 90)


@pytest.mark.e2e
def test_a_photo_stored_sideways_is_shown_upright(live: LiveServer, page: Page) -> None:
    project = "camera"
    create_project(live, project, ["thing"])
    stored = np.zeros((80, 120, 3), np.uint8)  # 120 wide as stored: red left, blue right
    stored[:, :60] = (0, 0, 255)
    stored[:, 60:] = (255, 0, 0)
    ok, jpeg = cv2.imencode(".jpg", stored)
    assert ok
    rotated = with_exif_orientation(jpeg.tobytes(), 6)  # shown turned a quarter clockwise
    info = live.run(live.stores.image.save_file(project, "train", "side.jpg", io.BytesIO(rotated)))
    assert (info.width, info.height) == (80, 120)

    stage = open_annotator(page, project, info.filename)

    def colour_at(x: float, y: float) -> list[int]:
        left, top = stage.at(x, y)
        return page.evaluate(
            """([x, y]) => {
                const canvas = document.getElementById("ann-canvas");
                const r = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
                const at = [(x - r.left) * dpr, (y - r.top) * dpr].map(Math.round);
                return Array.from(canvas.getContext("2d").getImageData(at[0], at[1], 1, 1).data);
            }""",
            [left, top],
        )

    expect(page.locator("#ann-canvas")).to_have_attribute("data-image", "drawn")
    red, blue = colour_at(40, 20), colour_at(40, 100)  # upright: red on top, blue below
    assert red[0] > 200 and red[2] < 60, red
    assert blue[2] > 200 and blue[0] < 60, blue


@pytest.mark.e2e
def test_any_class_by_search_and_the_tenth_by_zero(live: LiveServer, page: Page) -> None:
    project = "numbers"
    names = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    create_project(live, project, [*names, "eleven", "twelve"])
    name = seed_image(live, project, "n.png", [], seed=17, size=(160, 120))

    stage = open_annotator(page, project, name)
    page.keyboard.press("0")
    expect(page.locator("#ann-current-name")).to_have_text("ten")
    draw(page, stage, (10, 10, 40, 40))
    page.keyboard.press("c")  # search the classes by name
    expect(page.locator("#ann-class-search")).to_be_focused()
    page.keyboard.type("elev")
    expect(page.locator("#ann-classes li:not([hidden])")).to_have_count(1)
    page.keyboard.press("Enter")  # the match; the selected box (the one just drawn) takes it
    expect(page.locator("#ann-current-name")).to_have_text("eleven")
    expect(page.locator("#ann-classes li:not([hidden])")).to_have_count(12)
    draw(page, stage, (60, 60, 100, 100))  # in the current class
    page.keyboard.press("s")
    wait_saved(page)

    saved = live.run(live.stores.label.load(project, "train", name))
    assert sorted(a.class_id for a in saved) == [10, 10]


@pytest.mark.e2e
def test_zoom_keeps_the_point_under_the_cursor_and_space_drag_pans(
    live: LiveServer, page: Page
) -> None:
    project = "lens"
    create_project(live, project, ["dot"])
    name = seed_image(
        live, project, "z.png", [Annotation(0, 0.5, 0.5, 0.1, 0.1)], seed=18, size=(200, 150)
    )
    selected = page.locator("#ann-boxes li[aria-selected=true]")

    stage = open_annotator(page, project, name)
    point = stage.at(104, 79)  # inside the box (90..110, 67.5..82.5), off its centre
    page.mouse.move(*point)
    page.mouse.wheel(0, -400)
    expect(page.locator("#ann-zoom")).not_to_have_text("100%")
    zoom = int((page.locator("#ann-zoom").text_content() or "0").rstrip("%"))
    assert zoom > 120
    page.mouse.click(*point)  # the box is still under the cursor
    expect(selected).to_have_count(1)
    page.keyboard.press("Escape")
    expect(selected).to_have_count(0)

    page.keyboard.down(" ")
    drag(page, point, (point[0] + 150, point[1] + 60))
    page.keyboard.up(" ")
    expect(selected).to_have_count(0)  # panning neither draws nor selects
    expect(page.locator("#ann-boxes li")).to_have_count(1)
    page.mouse.click(point[0] + 150, point[1] + 60)
    expect(selected).to_have_count(1)

    page.keyboard.press("f")  # fit again
    expect(page.locator("#ann-zoom")).to_have_text("100%")


# --- copying, pasting, no objects -------------------------------------------------------------


@pytest.mark.e2e
def test_copy_the_previous_images_boxes_paste_on_another_and_mark_one_no_objects(
    live: LiveServer, page: Page
) -> None:
    project = "pasture"
    create_project(live, project, ["cow", "sheep"])
    first_boxes = [Annotation(0, 0.25, 0.3, 0.2, 0.2), Annotation(1, 0.7, 0.6, 0.3, 0.4)]
    first = seed_image(live, project, "p1.png", first_boxes, seed=4, size=(200, 150))
    second = seed_image(live, project, "p2.png", [], seed=5, size=(160, 120))
    third = seed_image(live, project, "p3.png", [], seed=6, size=(200, 150))
    fourth = seed_image(live, project, "p4.png", [], seed=7, size=(100, 80))

    open_annotator(page, project, first)
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+c")
    expect(page.locator("#ann-message")).to_have_text("Copied 2 boxes.")
    page.keyboard.press("d")
    page.wait_for_url(f"**/annotate/{second}")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    page.keyboard.press("p")  # every box of the image we came from
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "2")

    page.keyboard.press("d")
    page.wait_for_url(f"**/annotate/{third}")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    page.keyboard.press("n")
    expect(page.locator("#ann-no-objects")).to_have_attribute("aria-pressed", "true")
    shoot(page, "annotator-no-objects")

    page.keyboard.press("d")
    page.wait_for_url(f"**/annotate/{fourth}")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    page.keyboard.press("Control+v")  # the clipboard outlives the page
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "2")
    page.keyboard.press("s")
    wait_saved(page)

    want = [(a.class_id, (a.x, a.y, a.width, a.height)) for a in first_boxes]
    for name, (width, height) in ((second, (160, 120)), (fourth, (100, 80))):
        saved = live.run(live.stores.label.load(project, "train", name))
        expected = [(cls, pixels(Annotation(cls, *xywh), width, height)) for cls, xywh in want]
        assert_boxes(saved, expected, width, height)
        assert all(a.source == "manual" for a in saved)
    marked = live.run(live.stores.image.get(project, third))
    assert marked.no_objects
    assert live.run(live.stores.label.load(project, "train", third)) == []
    assert label_file(live, project, third).read_text() == ""  # a negative example


# --- suggestions ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_review_suggestions_with_the_keyboard(live: LiveServer, page: Page) -> None:
    project = "meadow"
    create_project(live, project, ["bee", "wasp"])
    kept = Annotation(0, 0.2, 0.2, 0.2, 0.2)
    first = seed_image(live, project, "r1.png", [kept], seed=8, size=(200, 150))
    second = seed_image(live, project, "r2.png", [], seed=9, size=(200, 150))
    suggested = [
        Annotation(1, 0.5, 0.5, 0.2, 0.2, source="model", confidence=0.9),
        Annotation(0, 0.8, 0.3, 0.1, 0.2, source="model", confidence=0.6),
        Annotation(1, 0.3, 0.75, 0.2, 0.2, source="model", confidence=0.4),
    ]
    live.run(live.stores.label.add_suggestions(project, first, suggested))
    live.run(live.stores.label.add_suggestions(project, second, suggested[:2]))

    open_annotator(page, project, first)
    pending = page.locator("#ann-boxes li.pending")
    expect(pending).to_have_count(3)
    expect(pending.first).to_contain_text("suggested 0.90")
    expect(page.locator("#ann-review")).to_be_visible()
    shoot(page, "annotator-suggestions")

    page.keyboard.press("Enter")  # selects the first suggestion
    expect(page.locator("#ann-boxes li.pending[aria-selected=true]")).to_contain_text("0.90")
    page.keyboard.press("Enter")  # accepts it; the next one is selected
    expect(pending).to_have_count(2)
    expect(page.locator("#ann-boxes li.pending[aria-selected=true]")).to_contain_text("0.60")
    page.keyboard.press("x")  # rejects it
    expect(pending).to_have_count(1)
    page.keyboard.press("Shift+Enter")  # accepts the rest
    expect(pending).to_have_count(0)
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "3")
    page.keyboard.press("d")
    page.wait_for_url(f"**/annotate/{second}")
    expect(page.locator("#ann-boxes li.pending")).to_have_count(2)
    page.keyboard.press("Shift+x")  # rejects every suggestion of this image
    expect(page.locator("#ann-boxes li")).to_have_count(0)
    page.keyboard.press("s")
    wait_saved(page)

    labels = live.run(live.stores.label.load(project, "train", first))
    assert sorted((a.class_id, a.source, a.confidence) for a in labels) == [
        (0, "manual", None),
        (1, "model", pytest.approx(0.4)),
        (1, "model", pytest.approx(0.9)),
    ]
    assert live.run(live.stores.label.list_suggestions(project, first)) == []
    assert live.run(live.stores.label.list_suggestions(project, second)) == []
    assert live.run(live.stores.label.load(project, "train", second)) == []
    assert len(label_lines(live, project, first)) == 3


# --- two tabs ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_save_over_a_newer_version_is_refused_and_the_page_offers_a_reload(
    live: LiveServer, page: Page
) -> None:
    project = "barn"
    create_project(live, project, ["hay"])
    name = seed_image(live, project, "loft.png", [], seed=10, size=(200, 150))

    stage = open_annotator(page, project, name)
    with api(live) as http:  # someone else saves first
        url = f"/api/v1/projects/{project}/images/{name}/labels"
        version = http.get(url).json()["version"]
        theirs = {"id": None, "class_id": 0, "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2}
        body = {"version": version, "labels": [theirs], "no_objects": False, "reject": []}
        saved = http.put(url, json=body)
        assert saved.status_code == 200
    draw(page, stage, (10, 10, 50, 40))
    page.keyboard.press("s")

    expect(page.locator("#ann-status")).to_have_attribute("data-state", "conflict")
    alert = page.locator("#ann-alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Not saved")
    shoot(page, "annotator-conflict", full_page=False)
    [kept] = live.run(live.stores.label.load(project, "train", name))  # theirs, untouched
    assert (kept.x, kept.y, kept.width, kept.height) == pytest.approx((0.5, 0.5, 0.2, 0.2))

    page.get_by_role("button", name="Reload this image").click()
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "1")  # theirs
    page.keyboard.press("Control+v")  # mine, kept on the clipboard
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "2")
    page.keyboard.press("s")
    wait_saved(page)
    assert_boxes(
        live.run(live.stores.label.load(project, "train", name)),
        [(0, (80, 60, 120, 90)), (0, (10, 10, 50, 40))],
        200,
        150,
    )


# --- the key list, the filter, the phone ------------------------------------------------------


@pytest.mark.e2e
def test_the_key_list_shows_every_key_and_previous_next_follow_the_filter(
    live: LiveServer, page: Page
) -> None:
    project = "hive"
    create_project(live, project, ["bee"])
    seed_image(live, project, "h1.png", [], seed=11, size=(120, 90), split="train")
    seed_image(live, project, "h2.png", [], seed=12, size=(120, 90), split="val")
    seed_image(live, project, "h3.png", [], seed=13, size=(120, 90), split="train")

    open_annotator(page, project, "h1.png", "split=train")
    page.keyboard.press("?")
    help_box = page.locator("#ann-help")
    expect(help_box).to_be_visible()
    keys = ["D", "→", "A", "←", "W", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Ctrl+C", "Ctrl+V"]
    keys += ["P", "N", "Enter", "Shift+Enter", "X", "Shift+X", "Delete", "Backspace", "C", "?"]
    for key in [*keys, "1 … 9, 0"]:
        exact = help_box.locator("kbd", has_text=re.compile(f"^{re.escape(key)}$"))
        expect(exact).to_have_count(1)
    expect(help_box).to_contain_text("Space + drag")
    shoot(page, "annotator-keys", full_page=False)
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    page.keyboard.press("ArrowRight")  # h2 is in val: the filter skips it
    page.wait_for_url("**/annotate/h3.png?split=train")
    expect(page.locator("#ann-next")).to_have_attribute("aria-disabled", "true")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url("**/annotate/h1.png?split=train")


@pytest.mark.e2e
def test_on_a_phone_the_image_fits_the_screen_and_next_works(live: LiveServer, page: Page) -> None:
    project = "paddock"
    create_project(live, project, ["horse"])
    seed_image(
        live, project, "f1.png", [Annotation(0, 0.5, 0.5, 0.4, 0.4)], seed=14, size=(640, 480)
    )
    seed_image(live, project, "f2.png", [], seed=15, size=(640, 480))
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto(f"/projects/{project}/annotate/f1.png")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    canvas = page.locator("#ann-canvas").bounding_box()
    assert canvas is not None and canvas["width"] <= 390
    zoom = int((page.locator("#ann-zoom").text_content() or "0%").rstrip("%"))
    assert zoom < 100  # fitted: 640 px wide on a 390 px screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    page.get_by_role("link", name="Next").click()
    page.wait_for_url("**/annotate/f2.png")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")


# --- 500 boxes --------------------------------------------------------------------------------


FRAME_RECORDER = """() => {
    window.__frames = [];
    window.__recording = true;
    const tick = (t) => {
        window.__frames.push(t);
        if (window.__recording) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""


@pytest.mark.e2e
def test_an_image_with_500_boxes_loads_saves_and_drags_smoothly(
    live: LiveServer, page: Page
) -> None:
    project = "flock"
    create_project(live, project, ["sheep", "lamb", "ram"])
    boxes = [
        Annotation(i % 3, (col + 0.5) / 25, (row + 0.5) / 20, 0.8 / 25, 0.8 / 20)
        for i, (row, col) in enumerate((r, c) for r in range(20) for c in range(25))
    ]
    name = seed_image(live, project, "flock.png", boxes, seed=16, size=(900, 600))

    page.goto(f"/projects/{project}/annotate/{name}")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    load_ms = page.evaluate("performance.getEntriesByName('annotator-ready')[0].startTime")
    expect(page.locator("#annotator")).to_have_attribute("data-boxes", "500")
    stage = stage_of(page)

    # Save round trips: change the class of one box (and save the 500), five times.
    click(page, stage, 18, 15)  # the first box's centre
    saves = []
    for key in ("2", "3", "1", "2", "3"):
        page.keyboard.press(key)
        page.keyboard.press("s")
        wait_saved(page)
        saves.append(int(page.locator("#annotator").get_attribute("data-save-ms") or "0"))

    # Frames while dragging the selected box across the image.
    page.evaluate(FRAME_RECORDER)
    drag(page, stage.at(18, 15), stage.at(450, 300), steps=60)
    page.wait_for_timeout(100)
    frames = page.evaluate("window.__recording = false, window.__frames")
    gaps = sorted(b - a for a, b in itertools.pairwise(frames))
    p95 = gaps[int(0.95 * (len(gaps) - 1))]
    shoot(page, "annotator-500-boxes", full_page=False)
    page.keyboard.press("s")
    wait_saved(page)

    print(
        f"\n500 boxes: page load {load_ms:.0f} ms; save round trip median "
        f"{statistics.median(saves)} ms (each {saves}; goal <= 200 ms); drag: {len(frames)} "
        f"frames, p95 interval {p95:.1f} ms (goal <= 33 ms), max {gaps[-1]:.1f} ms"
    )
    saved = live.run(live.stores.label.load(project, "train", name))
    assert len(saved) == 500
    moved = [a for a in saved if abs(a.x * 900 - 450) <= 1 and abs(a.y * 600 - 300) <= 1]
    assert len(moved) == 1 and moved[0].class_id == 2  # the last key was 3
    # Generous bounds on a shared 2-core machine; the goals are in the printed line.
    assert statistics.median(saves) < 1000
    assert p95 < 100
    assert len(frames) > 10
