"""The project page in a real browser: the class editor, export with its polling panel, the
error toast, and screenshots of every page at desktop and phone sizes."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Locator, Page, expect

from tests.e2e.support import (
    LiveServer,
    api,
    box,
    label_file,
    label_lines,
    line,
    seed_image,
    shoot,
    wait_until_finished,
)


def expect_classes(page: Page, names: list[str]) -> None:
    """The editor lists exactly ``names``, in this order, each with its YOLO index."""
    items = page.locator("#classes ol.class-list > li.class-item")
    expect(items).to_have_count(len(names))
    expect(page.locator("#classes-heading .count")).to_have_text(str(len(names)))
    for index, name in enumerate(names):
        expect(items.nth(index).locator(".index")).to_have_text(str(index))
        expect(items.nth(index).locator("input[name=class_name]")).to_have_value(name)


def class_row(page: Page, name: str) -> Locator:
    """The editor's list item of the class called ``name`` (by its Delete button's label)."""
    return page.locator("li.class-item").filter(
        has=page.get_by_role("button", name=f"Delete class {name}", exact=True)
    )


@pytest.mark.e2e
def test_editing_classes_in_the_browser_updates_the_page_the_database_and_the_label_files(
    live: LiveServer, page: Page
) -> None:
    project = "zoo-editor"

    # Create the project from the form on the index, without classes.
    page.goto("/")
    page.get_by_label("Name", exact=True).fill(project)
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(f"{live.url}/projects/{project}")
    expect(page.get_by_role("heading", level=1)).to_have_text(project)
    expect(page.locator("#classes .empty")).to_be_visible()

    # Add four classes through the add form.
    for count, name in enumerate(["cat", "dog", "bird", "fish"], start=1):
        page.get_by_label("New class").fill(name)
        page.get_by_role("button", name="Add class").click()
        expect(page.locator("#classes li.class-item")).to_have_count(count)
    expect(page.get_by_label("New class")).to_have_value("")
    expect_classes(page, ["cat", "dog", "bird", "fish"])

    # Seed images: a has a dog and a bird, b only a bird (plus a pending bird suggestion), c a cat.
    a = seed_image(live, project, "a.png", [box(1, x=0.3), box(2, x=0.7)], seed=1)
    b = seed_image(live, project, "b.png", [box(2)], seed=2)
    c = seed_image(live, project, "c.png", [box(0, y=0.4)], seed=3)
    live.run(live.stores.label.add_suggestions(project, b, [box(2, x=0.2)]))
    assert label_lines(live, project, a) == [line(1, x=0.3), line(2, x=0.7)]
    page.reload()

    # Rename dog to puppy.
    dog = class_row(page, "dog")
    dog.get_by_label("Name of class 1").fill("puppy")
    dog.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("button", name="Delete class puppy", exact=True)).to_be_visible()
    expect_classes(page, ["cat", "puppy", "bird", "fish"])

    # Move bird up: cat 0, bird 1, puppy 2, fish 3.
    page.get_by_role("button", name="Move bird up to index 1").click()
    expect_classes(page, ["cat", "bird", "puppy", "fish"])
    assert sorted(label_lines(live, project, a)) == [line(1, x=0.7), line(2, x=0.3)]

    # Merge cat into puppy: bird 0, puppy 1, fish 2; c's cat box becomes a puppy box.
    cat = class_row(page, "cat")
    cat.locator("summary", has_text="Merge").click()
    cat.get_by_label("Move every label and suggestion of “cat” to").select_option(label="2 · puppy")
    cat.get_by_role("button", name="Merge, then delete “cat”").click()
    expect_classes(page, ["bird", "puppy", "fish"])

    # Delete bird: the confirmation states what goes with it.
    page.get_by_role("button", name="Delete class bird", exact=True).click()
    confirm = page.locator("#classes.confirm")
    expect(confirm.get_by_role("heading", name="Delete class “bird”?")).to_be_visible()
    expect(confirm.locator("#usage-labels")).to_contain_text("2 labels")
    expect(confirm.locator("#usage-suggestions")).to_contain_text("1 suggestion ")
    expect(confirm.locator("#usage-images")).to_contain_text("1 image left with no labels")
    # Nothing is gone before the confirmation.
    with api(live) as http:
        listed = http.get(f"/api/v1/projects/{project}/classes").json()
    assert [cls["name"] for cls in listed] == ["bird", "puppy", "fish"]
    confirm.get_by_role("button", name="Delete “bird” and its labels").click()
    expect_classes(page, ["puppy", "fish"])
    expect(page.get_by_role("alert")).to_have_count(0)

    # The page after a reload, the database and the label file mirror agree.
    page.reload()
    expect_classes(page, ["puppy", "fish"])
    with api(live) as http:
        listed = http.get(f"/api/v1/projects/{project}/classes").json()
    assert [(cls["index"], cls["name"]) for cls in listed] == [(0, "puppy"), (1, "fish")]
    data_yaml = yaml.safe_load((live.data_dir / "projects" / project / "data.yaml").read_text())
    assert data_yaml["names"] == {0: "puppy", 1: "fish"}
    assert label_lines(live, project, a) == [line(0, x=0.3)]
    assert label_lines(live, project, c) == [line(0, y=0.4)]
    # b lost its only box: it is unlabelled again, so it has no label file.
    assert not label_file(live, project, b).exists()


@pytest.mark.e2e
def test_exporting_from_the_project_page_shows_progress_to_the_end_and_a_working_download(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    project = "export-e2e"
    with api(live) as http:
        created = http.post("/api/v1/projects", json={"name": project, "classes": ["car", "bus"]})
        assert created.status_code == 201, created.text
    labelled = [
        seed_image(
            live,
            project,
            f"frame-{n:02d}.png",
            [box(n % 2), box(1, x=0.2)],
            seed=100 + n,
            size=(320, 240),
        )
        for n in range(24)
    ]
    seed_image(live, project, "unlabelled.png", [], seed=99)

    page.goto(f"/projects/{project}")
    # A marker that a reload would wipe, and a log of the panel states htmx swapped in.
    page.evaluate(
        """() => {
            window.ydcNoReload = true;
            window.ydcSeen = [];
            document.body.addEventListener("htmx:afterSettle", () => {
                const status = document.querySelector("#export-task .task-status");
                if (status) window.ydcSeen.push(status.textContent.trim());
            });
        }"""
    )
    page.get_by_role("button", name="Export zip").click()

    panel = page.locator("#export-task article.task-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".task-status")).to_have_text("succeeded", timeout=30_000)
    expect(panel.locator("progress")).to_have_attribute("value", "100")
    expect(panel.locator("progress")).to_have_attribute("max", "100")
    expect(panel.locator(".task-pct")).to_have_text("100%")
    expect(panel.locator(".count-images")).to_have_text("24 images")
    expect(panel.locator(".count-boxes")).to_have_text("48 boxes")
    expect(panel.locator(".count-unlabelled")).to_have_text("1 unlabelled")
    assert page.evaluate("window.ydcNoReload") is True, "the page was reloaded"
    seen = page.evaluate("window.ydcSeen")
    assert seen[0] in {"queued", "running"}, seen
    assert seen[-1] == "succeeded", seen
    assert len(seen) >= 2, f"the panel never polled: {seen}"
    # A finished panel stops polling.
    expect(panel).not_to_have_attribute("hx-trigger", re.compile(".*"))
    shoot(page, "project-exported")

    link = panel.get_by_role("link", name="Download zip")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".zip"), download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        data_yaml = yaml.safe_load(archive.read("data.yaml"))
        assert data_yaml["names"] in ({0: "car", 1: "bus"}, ["car", "bus"]), data_yaml
        images = {n for n in names if n.startswith("images/") and not n.endswith("/")}
        labels = {n for n in names if n.startswith("labels/") and not n.endswith("/")}
        assert images == {f"images/train/{name}" for name in labelled}
        assert labels == {f"labels/train/{Path(name).stem}.txt" for name in labelled}
        first = archive.read(f"labels/train/{Path(labelled[1]).stem}.txt").decode()
        assert first.splitlines() == label_lines(live, project, labelled[1])
        stored = live.data_dir / "projects" / project / "images" / "train" / labelled[0]
        assert archive.read(f"images/train/{labelled[0]}") == stored.read_bytes()


@pytest.mark.e2e
def test_a_failed_action_shows_a_message(live: LiveServer, page: Page) -> None:
    project = "toast-e2e"
    with api(live) as http:
        created = http.post("/api/v1/projects", json={"name": project, "classes": ["a", "ghost"]})
        assert created.status_code == 201, created.text
        classes = http.get(f"/api/v1/projects/{project}/classes").json()
    ghost_id = next(c["id"] for c in classes if c["name"] == "ghost")

    page.goto(f"/projects/{project}")
    toast = page.locator("#toast")
    expect(toast).to_be_hidden()

    # Another tab deletes the class; this one still shows it.
    with api(live) as http:
        deleted = http.delete(f"/api/v1/projects/{project}/classes/{ghost_id}")
        assert deleted.status_code == 200, deleted.text

    row = class_row(page, "ghost")
    row.get_by_label("Name of class 1").fill("spectre")
    row.get_by_role("button", name="Rename").click()

    expect(toast).to_be_visible()
    expect(toast).to_contain_text(str(ghost_id))
    expect(toast).to_contain_text("class")
    expect(toast).not_to_contain_text("<")
    expect(toast).not_to_contain_text("The server answered")
    shoot(page, "toast", full_page=False)


@pytest.mark.e2e
def test_screenshots_of_every_page(live: LiveServer, page: Page) -> None:
    """Not a check of behaviour: pictures of each page (with data) for a person to look at."""
    project = "street-views"
    with api(live) as http:
        created = http.post(
            "/api/v1/projects",
            json={
                "name": project,
                "classes": ["car", "bicycle", "pedestrian", "traffic light"],
                "description": "Dash-cam frames from the city centre, spring 2026.",
            },
        )
        assert created.status_code == 201, created.text
        http.post("/api/v1/projects", json={"name": "empty-one", "classes": []})
        for n in range(6):
            seed_image(live, project, f"street-{n}.png", [box(n % 4), box(0, x=0.2)], seed=200 + n)
        seed_image(live, project, "val-0.png", [box(1)], seed=300, split="val")
        started = http.post(f"/api/v1/projects/{project}/export")
        assert started.status_code == 202, started.text
        task = wait_until_finished(http, started.json()["id"])
        assert task["status"] == "succeeded", task

    page.goto("/")
    expect(page.locator("#projects tbody tr")).not_to_have_count(0)
    shoot(page, "projects")

    page.goto(f"/projects/{project}")
    expect(page.locator("#classes li.class-item")).to_have_count(4)
    shoot(page, "project")

    page.get_by_role("button", name="Delete class car", exact=True).click()
    expect(page.locator("#classes.confirm")).to_be_visible()
    shoot(page, "class-delete-confirm")

    page.goto(f"/projects/{project}/delete")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Delete project")
    shoot(page, "project-delete-confirm")

    page.goto("/tasks")
    expect(page.locator(f"#task-row-{task['id']}")).to_be_visible()
    shoot(page, "tasks")

    page.goto(f"/tasks/{task['id']}")
    expect(page.locator(".task-status")).to_have_text("succeeded")
    shoot(page, "task")

    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    shoot(page, "error-404")
