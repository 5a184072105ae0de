"""The prompts page in a real browser: prompts typed for two classes are saved in place
(htmx), a prompt given to two classes is refused in place, and the page says which YOLO-World
files are missing; screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import LiveServer, shoot


@pytest.mark.e2e
def test_prompts_are_written_saved_and_what_yolo_world_lacks_is_shown(
    live: LiveServer, page: Page
) -> None:
    live.run(live.stores.dataset.create("prompted", ["cat", "dog", "traffic light"]))

    page.goto("/projects/prompted")
    page.get_by_role("link", name="Text prompts for YOLO-World →").click()
    expect(page.locator("#requirement-weights")).to_have_class("requirement missing")
    expect(page.locator("#requirement-weights .provide")).to_contain_text("yolov8s-worldv2.pt")
    expect(page.locator("#prompt-run button")).to_be_disabled()

    page.get_by_label("cat").fill("a tabby cat\nkitten")
    page.get_by_label("traffic light").fill("traffic light\nred light")
    page.get_by_role("button", name="Save prompts").click()
    expect(page.locator("#prompt-editor .notice")).to_have_text("Saved.")
    expect(page.locator("#prompt-editor .prompt-count").first).to_have_text("2 prompts")
    shoot(page, "prompts")

    page.get_by_label("dog").fill("Kitten")
    page.get_by_role("button", name="Save prompts").click()
    expect(page.locator("#prompt-error")).to_contain_text("given to both 'cat' and 'dog'")
    expect(page.get_by_label("dog")).to_have_value("Kitten")
    shoot(page, "prompts-refused")

    prompts = live.run(live.stores.dataset.get_prompts("prompted"))
    assert prompts == {0: ["a tabby cat", "kitten"], 2: ["traffic light", "red light"]}
