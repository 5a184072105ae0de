"""Images in a real browser: upload through the file input and by dropping files on the page,
the per-file results, the grid with its filters, shift-click selection and bulk move, the image
page, and screenshots of each at desktop and phone sizes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, api, box, photo, seed_image, shoot


def files(folder: Path, named: dict[str, bytes]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in named.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    return paths


def tile_names(page: Page) -> list[str]:
    return page.locator("#tiles li.tile").evaluate_all("els => els.map(e => e.dataset.filename)")


@pytest.mark.e2e
def test_upload_five_files_then_move_one_to_val_and_find_it_by_the_val_filter(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    project = "street"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["car"]}).is_success
    first, second, third = photo(1), photo(2), photo(3)
    chosen = files(
        tmp_path / "upload",
        {
            "corner.jpg": first,
            "crossing.jpg": second,
            "bridge.jpg": third,
            "corner copy.jpg": first,  # the same bytes again
            "broken.jpg": second[: len(second) // 3],  # cut off: truncated
        },
    )

    page.goto(f"/projects/{project}")
    expect(page.locator("[data-upload-submit]")).to_be_hidden()  # choosing files uploads them
    page.locator("#upload-files").set_input_files(chosen)

    totals = page.locator(".upload-totals")
    expect(totals.locator("[data-total=stored]")).to_have_text("3")
    expect(totals.locator("[data-total=duplicate]")).to_have_text("1")
    expect(totals.locator("[data-total=refused]")).to_have_text("1")
    expect(page.locator(".upload-status")).to_have_text("Sent 5 files.")
    expect(page.locator(".upload-progress progress")).to_have_attribute("value", "100")
    refused = page.locator("#upload-list li.result-refused")
    expect(refused.locator(".original")).to_have_text("broken.jpg")
    expect(refused.locator(".detail")).to_contain_text("truncated")
    duplicate = page.locator("#upload-list li.result-duplicate")
    expect(duplicate.locator(".original")).to_have_text("corner copy.jpg")
    expect(duplicate.locator(".detail")).to_contain_text("corner.jpg")
    # The splits box and the head's counts came back after the upload.
    expect(page.locator("#counts .total dd")).to_have_text("3")
    expect(page.locator("#health .health-loading")).to_have_count(0)  # the health came back
    expect(page.locator("#health")).not_to_contain_text("No images yet")
    shoot(page, "project-upload-results")

    page.get_by_role("link", name="See them in the grid").click()
    expect(page.locator("#grid-count")).to_contain_text("3 images")
    expect(page.locator("#tiles li.tile")).to_have_count(3)
    assert sorted(tile_names(page)) == ["bridge.jpg", "corner.jpg", "crossing.jpg"]
    # Every thumbnail loads from /media (lazy images: wait for them, do not sample once).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#tiles img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    for img in page.locator("#tiles img").all():
        assert (img.get_attribute("src") or "").startswith(f"/media/{project}/thumbs/")

    # Shift-click selects the range; the bar counts it.
    checkboxes = page.locator("#tiles input[name=filenames]")
    checkboxes.nth(0).click()
    checkboxes.nth(2).click(modifiers=["Shift"])
    expect(page.locator("[data-selected-count]")).to_have_text("3")
    page.locator("[data-select-all]").click()  # all were selected: clears
    expect(page.locator("[data-selected-count]")).to_have_text("0")
    expect(page.get_by_role("button", name="Move", exact=True)).to_be_disabled()

    # The upload drew each image's split from its hash: move one that is not in val yet.
    in_val = page.locator("#tiles li.tile").filter(has=page.locator(".badge.split-val"))
    was_in_val = in_val.evaluate_all("els => els.map(e => e.dataset.filename)")
    not_in_val = page.locator("#tiles li.tile").filter(has_not=page.locator(".badge.split-val"))
    moved = not_in_val.first.get_attribute("data-filename") or ""
    page.get_by_label(f"Select {moved}").check()
    page.get_by_label("Move to").select_option("val")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.locator(".notice")).to_have_text("Moved 1 image to val.")
    shoot(page, "grid")

    page.get_by_label("Split", exact=True).select_option("val")
    now_in_val = sorted([*was_in_val, moved])
    expect(page.locator("#tiles li.tile")).to_have_count(len(now_in_val))
    expect(page.locator("#grid-count strong")).to_have_text(str(len(now_in_val)))
    assert sorted(tile_names(page)) == now_in_val
    expect(page).to_have_url(f"{live.url}/projects/{project}/images?split=val")
    info = live.run(live.stores.image.get(project, moved))
    assert (info.split, info.split_pinned) == ("val", True)
    assert (live.data_dir / "projects" / project / "images" / "val" / moved).is_file()


@pytest.mark.e2e
def test_files_dropped_anywhere_on_the_page_are_uploaded(live: LiveServer, page: Page) -> None:
    project = "dropped"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["car"]}).is_success

    page.goto(f"/projects/{project}")
    payload = json.dumps(
        [
            {"name": "dropped one.jpg", "data": base64.b64encode(photo(11)).decode()},
            {"name": "dropped two.jpg", "data": base64.b64encode(photo(12)).decode()},
        ]
    )
    page.evaluate(
        """payload => {
            const transfer = new DataTransfer();
            for (const f of JSON.parse(payload)) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
            }
            const target = document.querySelector("footer");
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        payload,
    )

    expect(page.locator(".upload-totals [data-total=stored]")).to_have_text("2")
    expect(page.locator("#counts .total dd")).to_have_text("2")
    names = sorted(i.filename for i in live.run(live.stores.image.list(project, "train")))
    names += sorted(i.filename for i in live.run(live.stores.image.list(project, "val")))
    names += sorted(i.filename for i in live.run(live.stores.image.list(project, "test")))
    assert sorted(names) == ["dropped one.jpg", "dropped two.jpg"]


@pytest.mark.e2e
def test_the_image_page_draws_the_boxes_over_the_upright_image(
    live: LiveServer, page: Page
) -> None:
    project = "boxes"
    with api(live) as http:
        assert http.post(
            "/api/v1/projects", json={"name": project, "classes": ["car", "person"]}
        ).is_success
    name = seed_image(
        live,
        project,
        "scene.png",
        [box(0, 0.3, 0.4, 0.3, 0.3), box(1, 0.7, 0.6, 0.2, 0.5)],
        seed=5,
        size=(480, 320),
    )

    page.goto(f"/projects/{project}/images/{name}")
    stage = page.locator(".stage")
    image = stage.locator("img")
    expect(image).to_be_visible()
    assert image.evaluate("i => i.complete && i.naturalWidth") == 480
    boxes = stage.locator(".box")
    expect(boxes).to_have_count(2)
    expect(boxes.nth(0).locator(".box-label")).to_have_text("car")
    # The first box is drawn where its coordinates say, in the image's displayed frame.
    frame = image.bounding_box()
    drawn = boxes.nth(0).bounding_box()
    assert frame is not None and drawn is not None
    assert abs((drawn["x"] - frame["x"]) / frame["width"] - 0.15) < 0.02
    assert abs(drawn["width"] / frame["width"] - 0.3) < 0.02
    shoot(page, "image-page")


@pytest.mark.e2e
def test_a_missing_thumbnail_is_made_again_when_the_grid_shows_it(
    live: LiveServer, page: Page
) -> None:
    project = "thumbs"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["car"]}).is_success
    name = seed_image(live, project, "lost.png", [], seed=8)
    info = live.run(live.stores.image.get(project, name))
    thumb = live.data_dir / "projects" / project / "thumbs" / f"{info.sha256}.jpg"
    thumb.unlink()

    page.goto(f"/projects/{project}/images")

    image = page.locator("#tiles img")
    expect(image).to_have_attribute("src", f"/api/v1/projects/{project}/images/{name}/thumbnail")
    page.wait_for_function("() => document.querySelector('#tiles img').naturalWidth > 0")
    assert thumb.is_file()


@pytest.mark.e2e
def test_the_health_section_warns_when_near_duplicates_span_splits(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    project = "leaky"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["car"]}).is_success
    original = photo(21)
    pixels = cv2.imdecode(np.frombuffer(original, np.uint8), cv2.IMREAD_COLOR)
    ok, recompressed = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    page.goto(f"/projects/{project}")
    named = {"shot.jpg": original, "shot-small.jpg": recompressed.tobytes(), "other.jpg": photo(22)}
    page.locator("#upload-files").set_input_files(files(tmp_path, named))
    expect(page.locator(".upload-totals [data-total=stored]")).to_have_text("3")
    # The re-encoded copy joined its twin's split; moving it by hand makes the pair leak.
    shot = live.run(live.stores.image.get(project, "shot.jpg"))
    copy = live.run(live.stores.image.get(project, "shot-small.jpg"))
    assert copy.split == shot.split
    other_split = "val" if shot.split != "val" else "test"
    live.run(live.stores.image.move_many(project, ["shot-small.jpg"], other_split))

    page.reload()
    expect(page.locator("#health-leak")).to_contain_text("Train/val leakage")
    shoot(page, "project-health-leak")
