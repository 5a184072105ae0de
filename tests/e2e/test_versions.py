"""Dataset versions in a real browser: two projects ticked on the form, the mapping screen htmx
loads (``Car`` and ``car `` shown as one class, ``dog`` dropped there), a small recipe, and the
version listed with its counts once its task has built it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, api, box, seed_image, shoot


@pytest.mark.e2e
def test_a_version_built_through_the_form_with_a_mapping_choice_is_listed_with_counts(
    live: LiveServer, page: Page
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    with api(live) as http:
        for name, classes in (("vnorth", ["Car", "person"]), ("vsouth", ["car ", "dog"])):
            created = http.post("/api/v1/projects", json={"name": name, "classes": classes})
            assert created.is_success, created.text
    seed_image(live, "vnorth", "n1.png", [box(0)], seed=71, size=(160, 120))
    seed_image(live, "vnorth", "n2.png", [box(1)], seed=72, split="val", size=(160, 120))
    seed_image(live, "vsouth", "s1.png", [box(0, 0.3), box(1, 0.7)], seed=73, size=(160, 120))
    seed_image(live, "vsouth", "s2.png", [box(0)], seed=74, split="val", size=(160, 120))

    page.goto("/versions/new")
    expect(page.locator("header nav a[href='/versions']")).to_have_attribute("aria-current", "page")
    expect(page.locator("#version-mapping")).to_contain_text("Choose projects")
    page.get_by_label("vnorth").check()
    page.get_by_label("vsouth").check()
    table = page.locator("#version-mapping table.version-classes")
    expect(table).to_be_visible()
    expect(table.locator("th[scope=row]").first).to_have_text("Car matched by name")
    expect(table.locator("tr.unmatched")).to_have_count(2)
    page.locator("select[name='map:vsouth:1']").select_option("drop")
    page.locator("#version-name").fill("e2e-cars")
    page.locator("#version-outputs").fill("1")
    page.get_by_label("Horizontal flip").check()
    shoot(page, "versions-new-mapping")
    page.get_by_role("button", name="Build the version").click()

    expect(page).to_have_url(f"{live.url}/versions")
    card = page.locator("#version-e2e-cars")
    expect(card.locator(".version-status")).to_have_text("ready", timeout=60_000)
    rows = card.locator("table.version-counts tbody tr")
    expect(rows).to_have_count(3)  # images, Car, person: dog was dropped
    for n, (head, cells) in enumerate(
        (("images", ["4", "2", "0"]), ("Car", ["4", "1", "0"]), ("person", ["0", "1", "0"]))
    ):
        expect(rows.nth(n).locator("th")).to_have_text(head)
        expect(rows.nth(n).locator("td")).to_have_text(cells)
    expect(card.locator(".version-mapping")).to_contain_text("vsouth/dog → dropped")
    expect(card.get_by_role("link", name="Download zip")).to_be_visible()
    shoot(page, "versions")
    with api(live) as http:
        version = http.get("/api/v1/versions/e2e-cars").json()
    assert version["classes"] == ["Car", "person"]
    assert version["counts"]["boxes"]["train"] == {"Car": 4}

    page.goto("/versions/e2e-cars")
    expect(page.locator(".version-folder")).to_contain_text("0 Car")
    shoot(page, "version-detail")
    page.get_by_role("link", name="Delete…").click()
    expect(page.locator("h1")).to_have_text("Delete version “e2e-cars”?")
    shoot(page, "version-delete")

    # The project's training box offers the version beside its current data.
    page.goto("/projects/vnorth")
    data = page.locator("#training-version")
    expect(data.locator("option[value='e2e-cars']")).to_have_text("version e2e-cars")
    data.select_option("e2e-cars")
    page.locator("#training").scroll_into_view_if_needed()
    shoot(page, "training-on-a-version")

    # Deleting it from its confirmation page: the list no longer has it, the projects keep theirs.
    page.goto("/versions/e2e-cars/delete")
    page.get_by_role("button", name="Delete “e2e-cars” for good").click()
    expect(page).to_have_url(f"{live.url}/versions")
    expect(page.locator("#version-e2e-cars")).to_have_count(0)
    assert not (live.data_dir / "versions" / "e2e-cars").exists()
    assert (live.data_dir / "projects" / "vnorth" / "images" / "train" / "n1.png").is_file()
