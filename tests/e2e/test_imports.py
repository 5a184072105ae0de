"""Importing in a real browser: a Roboflow YOLO zip through the projects page's form into a new
project, its task followed to the import report, then the same sharks as a COCO export merged
through the project page's form; screenshots of the forms and the report."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TEST_DATA
from tests.e2e.support import LiveServer, shoot


def zipped(folder: Path, target: Path, extra: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder)}")
        for name, text in (extra or {}).items():
            archive.writestr(f"{folder.name}/{name}", text)
    return target


@pytest.mark.e2e
def test_a_roboflow_zip_becomes_a_project_and_a_coco_export_merges_into_it(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    yolo = zipped(
        TEST_DATA / "roboflow-sharks-tiny-yolo",
        tmp_path / "sharks yolo.zip",
        # A label file whose image is not in the export: reported, not imported.
        {"train/labels/lost-image.txt": "0 0.5 0.5 0.2 0.2\n"},
    )
    coco = zipped(TEST_DATA / "roboflow-sharks-tiny-coco", tmp_path / "sharks-coco.zip")

    page.goto("/")
    form = page.locator("form.import-form")
    form.get_by_label("Project name").fill("e2e-sharks")
    form.get_by_label("Zip of the dataset").set_input_files(str(yolo))
    shoot(page, "index-import")
    form.get_by_role("button", name="Import").click()

    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(page.locator(".task-panel .task-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator(".task-report")).to_contain_text("imported 10 images, 60 boxes")
    page.get_by_role("link", name="See the import report").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Import report")
    expect(page.locator(".import-summary")).to_contain_text("Roboflow YOLO from sharks yolo.zip")
    expect(page.locator("#reason-images td.num")).to_have_text("10")
    expect(page.locator("#reason-polygon td.num")).to_have_text("17")
    expect(page.locator("#reason-orphan_label")).to_contain_text("lost-image.txt")
    expect(page.locator(".import-classes")).to_contain_text("0 fish")
    shoot(page, "import-report")

    page.get_by_role("link", name="Open e2e-sharks").click()
    expect(page).to_have_url(re.compile(r"/projects/e2e-sharks$"))
    box = page.locator("#import")
    box.get_by_label("Zip of the dataset").set_input_files(str(coco))
    box.scroll_into_view_if_needed()
    shoot(page, "project-import-box", full_page=False)
    box.get_by_role("button", name="Import").click()

    expect(page.locator(".task-panel .task-status")).to_have_text("succeeded", timeout=60_000)
    page.get_by_role("link", name="See the import report").click()
    expect(page.locator(".import-summary")).to_contain_text("COCO JSON from sharks-coco.zip")
    # fish, primary, shark matched the project's classes by name: none added.
    expect(page.locator("#reason-classes_added")).to_have_count(0)
    expect(page.locator("#reason-placeholder")).to_contain_text("sharks")
    with_labels = live.run(live.stores.image.count("e2e-sharks"))
    assert with_labels == 20
