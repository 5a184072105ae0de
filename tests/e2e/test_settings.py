"""The settings page in a real browser (issue 11, point 4's acceptance): the "next image" key
rebound to K is what the annotator then answers (and D no longer is); a key another action has
is refused with both named beside the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, api, seed_image, shoot


@pytest.fixture(autouse=True)
def default_preferences(live: LiveServer, page: Page) -> Iterator[None]:
    """Preferences are the instance's, and the live server serves every browser test: start
    from the defaults and leave them so."""
    page.set_viewport_size({"width": 1280, "height": 800})
    live.run(live.stores.preference.reset())
    yield
    live.run(live.stores.preference.reset())


@pytest.mark.e2e
def test_a_rebound_next_key_moves_the_annotator_and_a_conflict_is_refused(
    live: LiveServer, page: Page
) -> None:
    project = "rebind"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["bee"]}).is_success
    for i, name in enumerate(["r1.png", "r2.png", "r3.png"]):
        seed_image(live, project, name, [], seed=40 + i, size=(120, 90))

    page.goto("/settings")
    expect(page.locator("header nav a[href='/settings']")).to_have_attribute("aria-current", "page")
    next_field = page.locator("#pref-keymap-next")
    expect(next_field).to_have_value("d ArrowRight")
    shoot(page, "settings")
    next_field.fill("k")
    page.get_by_role("button", name="Save keys").click()
    expect(page.locator("#keymap-saved")).to_have_text("Saved.")
    expect(page.locator("#pref-keymap-next")).to_have_value("k")

    # Another action on K: refused beside its field, both actions named, what was typed kept.
    page.locator("#pref-keymap-previous").fill("k")
    page.get_by_role("button", name="Save keys").click()
    error = page.locator("#pref-keymap-previous-error")
    expect(error).to_contain_text("Next image")
    expect(error).to_contain_text("Previous image")
    expect(page.locator("#pref-keymap-previous")).to_have_value("k")
    expect(page.locator("#pref-keymap-previous")).to_have_attribute("aria-invalid", "true")
    shoot(page, "settings-conflict")
    with api(live) as http:
        keymap = http.get("/api/v1/preferences").json()["keymap"]
    assert keymap["next"] == ["k"]
    assert keymap["previous"] == ["a", "ArrowLeft"]

    page.goto(f"/projects/{project}/annotate/r1.png")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    expect(page.locator("#ann-next")).to_have_attribute("title", "Save, then the next image (K)")
    page.keyboard.press("?")
    help_box = page.locator("#ann-help")
    expect(help_box).to_be_visible()
    next_row = help_box.locator("dd", has_text="Save, then go to the next image")
    expect(next_row.locator("xpath=preceding-sibling::dt[1]")).to_have_text("K")
    shoot(page, "annotator-keys-rebound", full_page=False)
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    # D (the old key) no longer goes on: the page stays (a marker on window survives).
    page.evaluate("() => { window.stayed = true; }")
    page.keyboard.press("d")
    page.wait_for_timeout(1500)  # a navigation D started would have happened by now
    assert page.evaluate("() => window.stayed === true")
    assert page.url.endswith("/annotate/r1.png")

    page.keyboard.press("k")
    page.wait_for_url("**/annotate/r2.png")
    expect(page.locator("#annotator")).to_have_attribute("data-ready", "true")
    page.keyboard.press("a")  # previous keeps its default keys
    page.wait_for_url("**/annotate/r1.png")


@pytest.mark.e2e
def test_the_thumbnail_size_widens_the_grids_tiles_and_ratios_prefill_the_new_project_form(
    live: LiveServer, page: Page
) -> None:
    project = "tilesize"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["bee"]}).is_success
    for i in range(6):
        seed_image(live, project, f"t{i}.png", [], seed=60 + i, size=(160, 120))

    def tile_width() -> float:
        page.goto(f"/projects/{project}/images")
        expect(page.locator("#tiles .tile").first).to_be_visible()
        return float(page.locator("#tiles .tile").first.bounding_box()["width"])  # type: ignore[index]

    medium = tile_width()
    page.goto("/settings")
    page.locator("#pref-thumbnail_size").select_option("large")
    page.get_by_role("button", name="Save size").click()
    expect(page.locator("#grid-saved")).to_have_text("Saved.")
    page.locator("#pref-split_ratios-train").fill("0.7")
    page.locator("#pref-split_ratios-val").fill("0.2")
    page.locator("#pref-split_ratios-test").fill("0.2")
    page.get_by_role("button", name="Save ratios").click()
    expect(page.locator("#splits-error")).to_contain_text("add up to 1 (they add up to 1.100)")
    expect(page.locator("#pref-split_ratios-test")).to_have_value("0.2")
    page.locator("#pref-split_ratios-test").fill("0.1")
    page.get_by_role("button", name="Save ratios").click()
    expect(page.locator("#splits-saved")).to_have_text("Saved.")

    large = tile_width()
    assert large > medium * 1.25, (medium, large)
    shoot(page, "grid-large-thumbnails")

    page.goto("/")
    expect(page.locator("#project-train")).to_have_value("0.7")
    expect(page.locator("#project-val")).to_have_value("0.2")
    expect(page.locator("#project-test")).to_have_value("0.1")
    shoot(page, "index-new-project-ratios")
    page.goto(f"/projects/{project}/autolabel")
    expect(page.locator("#autolabel-iou")).to_have_value("0.7")
    shoot(page, "autolabel-thresholds")


@pytest.mark.e2e
def test_export_then_import_in_the_browser_and_a_bad_file_is_refused_with_why(
    live: LiveServer, page: Page
) -> None:
    with api(live) as http:
        http.put("/api/v1/preferences", json={"thumbnail_size": "small"}).raise_for_status()
    page.goto("/settings")
    with page.expect_download() as download:
        page.locator("#settings-export").click()
    exported = download.value
    assert exported.suggested_filename == "ydc-preferences.yaml"
    text = Path(exported.path()).read_text(encoding="utf-8")
    assert "thumbnail_size: small" in text

    bad = "thumbnail_size: large\nkeymap:\n  fit: [Ctrl+w]\n"
    page.locator("#pref-file").set_input_files(
        files=[{"name": "bad.yaml", "mimeType": "application/yaml", "buffer": bad.encode()}]
    )
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#pref-file-error")).to_contain_text("Nothing was imported")
    expect(page.locator("#pref-file-error")).to_contain_text("closes the tab")
    shoot(page, "settings-import-refused")
    with api(live) as http:
        assert http.get("/api/v1/preferences").json()["thumbnail_size"] == "small"
        http.delete("/api/v1/preferences").raise_for_status()

    page.locator("#pref-file").set_input_files(
        files=[{"name": "ok.yaml", "mimeType": "application/yaml", "buffer": text.encode()}]
    )
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator(".settings-notice")).to_have_text("The file was imported.")
    expect(page.locator("#pref-thumbnail_size")).to_have_value("small")
