"""Storage health in a real browser: a file deleted by hand while the server runs, found by a
reconcile run from the page, put back by uploading it through the locate form, and another
missing image deleted after its confirmation; screenshots at desktop and phone sizes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, api, photo, shoot


@pytest.mark.e2e
def test_a_lost_file_is_found_by_reconcile_then_put_back_and_another_deleted(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    project = "storage-lost"
    named = {"harbour.jpg": photo(31), "pier.jpg": photo(32), "beach.jpg": photo(33)}
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["boat"]}).is_success
        uploaded = http.post(
            f"/api/v1/projects/{project}/images",
            files=[("files", (name, data, "image/jpeg")) for name, data in named.items()],
            data={"split": "train"},
        )
        assert uploaded.json()["totals"]["stored"] == 3
        beach_thumb = http.get(f"/api/v1/projects/{project}/images/beach.jpg").json()["thumb_url"]
    folder = live.data_dir / "projects" / project
    images = folder / "images" / "train"
    (images / "pier.jpg").unlink()
    (images / "beach.jpg").unlink()
    # beach.jpg's thumbnail goes too (a cache): the page cannot show a picture of it.
    (folder / "thumbs" / beach_thumb.rsplit("/", 1)[-1]).unlink()

    # The server's own start-up reconcile ran long ago: run one from the page.
    page.goto("/storage")
    expect(page.get_by_role("heading", level=1)).to_have_text("Storage health")
    page.get_by_role("button", name="Run reconcile").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(page.locator(".task-panel .task-status")).to_have_text("succeeded", timeout=30_000)

    page.goto("/storage")
    block = page.locator(f"#missing-{project}")
    expect(block.locator(".missing-count")).to_have_text("2 images missing")
    expect(block.locator("li.missing-item")).to_have_count(2)
    latest = page.locator("#latest-reconcile")
    expect(latest.locator(".task-status")).to_have_text("succeeded")
    finding = latest.locator("li.finding[data-kind=missing_image]")
    expect(finding).to_contain_text(f"projects/{project}/images/train/pier.jpg")
    # pier.jpg shows the thumbnail made at upload; beach.jpg's is gone (storage.css words it).
    loaded = "img => img.complete && img.naturalWidth > 0"
    failed = "img => img.complete && img.naturalWidth === 0"
    thumb = "li[data-filename='{}'] img"
    page.wait_for_function(loaded, arg=block.locator(thumb.format("pier.jpg")).element_handle())
    page.wait_for_function(failed, arg=block.locator(thumb.format("beach.jpg")).element_handle())
    # Other tests share the server: their missing images count in the page's total too.
    others = int(page.locator("#missing-total").inner_text()) - 2
    shoot(page, "storage-missing")

    # Put pier.jpg back under another name, with a file that matches nothing beside it.
    back = tmp_path / "found" / "IMG_0042.jpg"
    back.parent.mkdir()
    back.write_bytes(named["pier.jpg"])
    stranger = tmp_path / "found" / "holiday.jpg"
    stranger.write_bytes(photo(99))
    block.get_by_label("Locate files…").set_input_files([str(back), str(stranger)])
    block.get_by_role("button", name="Put back").click()
    results = block.locator("li.locate-result")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_contain_text("restored pier.jpg (train)")
    expect(results.nth(1)).to_contain_text("no missing image has these bytes")
    expect(block.locator(".missing-count")).to_have_text("1 image missing")
    expect(page.locator("#missing-total")).to_have_text(str(others + 1))
    assert (images / "pier.jpg").read_bytes() == named["pier.jpg"]
    shoot(page, "storage-located")

    # Delete beach.jpg: asked first, in place of the block.
    block.get_by_role("button", name="Delete beach.jpg").click()
    confirm = page.locator(f"#missing-{project}.confirm")
    expect(confirm.get_by_role("heading")).to_have_text("Delete beach.jpg?")
    shoot(page, "storage-confirm", full_page=False)
    confirm.get_by_role("button", name="Delete beach.jpg").click()
    expect(block.locator(".storage-notice")).to_have_text("Deleted beach.jpg.")
    expect(block.locator(".missing-count")).to_have_text("0 images missing")
    if others:
        expect(page.locator("#missing-total")).to_have_text(str(others))
    else:
        expect(page.locator("#missing-total")).to_be_hidden()
    with api(live) as http:
        listed = http.get(f"/api/v1/projects/{project}/images").json()
        assert sorted(i["filename"] for i in listed["items"]) == ["harbour.jpg", "pier.jpg"]
