"""The folder capture form, its JSON twin and the "End session" action: the form's fields post
to a new session (on to its page, or HX-Redirect); a folder outside the import roots answers
403, a missing one 404, with nothing created; a folder session in progress can be ended (a
session of another source cannot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.stores import Stores
from tests.web.htmltree import Element, parse


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path.resolve() / "incoming"
    (root / "shoot").mkdir(parents=True)
    return root


@pytest.fixture
def settings(tmp_path: Path, roots: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        run_tasks=False,
        allowed_hosts=["testserver"],
        import_roots=[roots],
    )


@pytest.fixture(autouse=True)
async def project(app: FastAPI) -> None:
    await app.state.stores.dataset.create("cam", ["thing"])


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def render(app: FastAPI, template: str, **context: Any) -> Element:
    markup = app.state.templates.get_template(template).render(csrf_token="tok", **context)
    return parse(markup)


def fields(form: Element) -> dict[str, str]:
    """What the browser would post with the form as it is shown (checkboxes ticked)."""
    posted = {}
    for field in form.find_all("input") + form.find_all("select"):
        name = field.attrs.get("name")
        if not name or name == "csrf_token":
            continue
        if field.tag == "select":
            posted[name] = next(
                o.attrs["value"] for o in field.find_all("option") if "selected" in o.attrs
            )
        else:
            posted[name] = field.attrs.get("value", "")
    return posted


async def test_the_folder_form_posts_a_new_session_and_goes_on_to_its_page(
    app: FastAPI, client: httpx.AsyncClient, roots: Path
) -> None:
    page = render(
        app,
        "sessions/_folder_form.html",
        project_name="cam",
        splits=["train", "val", "test"],
        default_bits=6,
    )
    form = page.find("form", class_="folder-form")
    assert form.attrs["action"] == "/projects/cam/sessions/folder"
    assert "Auto-label frames as they arrive with the active model" in form.text()
    posted = fields(form)
    assert set(posted) == {"folder", "near_duplicate_bits", "split", "watch", "autolabel"}
    assert posted["near_duplicate_bits"] == "6" and posted["split"] == "drawn"
    posted |= {"folder": str(roots / "shoot"), "split": "val"}

    response = await client.post(form.attrs["action"], data=posted)

    assert response.status_code == 303
    session_id = int(response.headers["location"].rsplit("/", 1)[1])
    session = await stores_of(app).session.get(session_id)
    assert session.source == "folder" and session.status == "in_progress"
    assert session.settings == {
        "folder": str(roots / "shoot"),
        "near_duplicate_bits": 6,
        "split": "val",
        "watch": True,
        "autolabel": True,
    }
    (task,) = await stores_of(app).task.list()
    assert task.kind == "capture_folder" and task.params["session"] == session_id

    htmx = await client.post(
        form.attrs["action"], data={"folder": str(roots)}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/sessions/")
    unticked = await stores_of(app).session.get(int(htmx.headers["HX-Redirect"].rsplit("/", 1)[1]))
    assert unticked.settings["watch"] is False and unticked.settings["autolabel"] is False


async def test_the_folder_form_with_a_folder_outside_the_roots_answers_403(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await client.post("/projects/cam/sessions/folder", data={"folder": str(tmp_path)})
    assert response.status_code == 403
    assert "outside the folders ydc may import from" in response.text
    assert await stores_of(app).session.list("cam") == []


async def test_a_folder_session_in_progress_can_be_ended_and_others_cannot(
    app: FastAPI, client: httpx.AsyncClient, roots: Path
) -> None:
    started = await client.post(
        "/api/v1/projects/cam/sessions/folder", json={"folder": str(roots), "watch": True}
    )
    assert started.status_code == 202
    session_id = started.json()["session"]["id"]
    session = await stores_of(app).session.get(session_id)
    form = render(app, "sessions/_folder_end.html", session=session).find("form")
    assert form.attrs["action"] == f"/sessions/{session_id}/folder/end"
    assert form.find("button").text() == "End session"

    response = await client.post(form.attrs["action"])

    assert response.status_code == 303
    assert response.headers["location"] == f"/sessions/{session_id}"
    ended = await stores_of(app).session.get(session_id)
    assert ended.status == "completed" and ended.log[-1].startswith("Ended")
    assert render(app, "sessions/_folder_end.html", session=ended).find_all("form") == []
    again = await client.post(f"/api/v1/sessions/{session_id}/folder/end")
    assert again.status_code == 200 and again.json()["log"] == ended.log

    video = await stores_of(app).session.create("cam", "video", {})
    refused = await client.post(f"/api/v1/sessions/{video.id}/folder/end")
    assert refused.status_code == 422
    assert render(app, "sessions/_folder_end.html", session=video).find_all("form") == []
    assert (await client.post("/api/v1/sessions/999/folder/end")).status_code == 404


async def test_a_folder_outside_the_import_roots_is_refused_with_403_and_nothing_created(
    app: FastAPI, client: httpx.AsyncClient, roots: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (roots / "escape").symlink_to(tmp_path / "elsewhere")

    for folder, status in [
        (tmp_path / "elsewhere", 403),
        (f"{roots}/../elsewhere", 403),
        (roots / "escape", 403),
        (roots / "missing", 404),
        ("relative/path", 422),
    ]:
        response = await client.post(
            "/api/v1/projects/cam/sessions/folder", json={"folder": str(folder)}
        )
        assert response.status_code == status, (folder, response.text)
    refused = await client.post(
        "/api/v1/projects/cam/sessions/folder", json={"folder": str(tmp_path / "elsewhere")}
    )
    assert "outside the folders ydc may import from" in refused.json()["detail"]
    unknown = await client.post(
        "/api/v1/projects/nope/sessions/folder", json={"folder": str(roots)}
    )
    assert unknown.status_code == 404
    assert await stores_of(app).session.list("cam") == []
    assert await stores_of(app).task.list() == []


async def test_without_import_roots_a_folder_capture_is_refused_with_403(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "import_roots", [])
    response = await client.post("/api/v1/projects/cam/sessions/folder", json={"folder": "/"})
    assert response.status_code == 403
    assert "YDC_IMPORT_ROOTS" in response.json()["detail"]
    assert await stores_of(app).session.list("cam") == []


async def test_the_api_starts_a_folder_session_and_answers_202_with_it_and_its_task(
    app: FastAPI, client: httpx.AsyncClient, roots: Path
) -> None:
    response = await client.post(
        "/api/v1/projects/cam/sessions/folder",
        json={"folder": str(roots), "split": "test", "near_duplicate_bits": 0, "autolabel": True},
    )

    assert response.status_code == 202
    body = response.json()
    assert body["session"]["settings"] == {
        "folder": str(roots),
        "near_duplicate_bits": 0,
        "split": "test",
        "watch": False,
        "autolabel": True,
    }
    assert body["task"]["kind"] == "capture_folder" and body["task"]["status"] == "queued"
    (task,) = await stores_of(app).task.list()
    assert task.id == body["task"]["id"] and task.params["session"] == body["session"]["id"]
    bad = await client.post(
        "/api/v1/projects/cam/sessions/folder", json={"folder": str(roots), "split": "dev"}
    )
    assert bad.status_code == 422
