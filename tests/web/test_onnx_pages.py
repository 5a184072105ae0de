"""ONNX export on the models page: every model has an "Export to ONNX" button that queues the
task and goes on to its page, and a "Download ONNX" link once its folder holds the export. The
export job itself is tested in tests/tasks/test_onnx_export.py; here the file is written by
hand."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from app.domain.stores import Stores
from tests.web.htmltree import Element, parse
from tests.web.test_training_pages import HTMX, PROJECT, add_model, project, token

__all__ = ["project"]  # the fixture, used by name


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def card(page: Element, model: str) -> Element:
    return page.find("article", id=f"model-{model}")


async def test_every_model_has_an_export_button_and_a_download_once_exported(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "plain")
    await add_model(app, tmp_path, "exported")
    info = await stores_of(app).model.get("exported")
    assert info is not None
    (info.path.parent / "best.onnx").write_bytes(b"onnx bytes")

    page = parse((await client.get(f"/projects/{project}/models")).text)
    fragment = await client.get(f"/projects/{project}/models", headers=HTMX)

    for name in ("plain", "exported"):
        form = card(page, name).find("form", action=f"/models/{name}/onnx")
        assert form.attrs["method"] == "post"
        assert form.find("button").text() == "Export to ONNX"
        assert form.find("input", name="csrf_token").attrs["value"]
    assert card(page, "plain").find_all("a", href="/models/plain/onnx") == []
    download = card(page, "exported").find("a", href="/models/exported/onnx")
    assert download.text() == "Download ONNX"
    assert download.attrs["download"] == "exported.onnx"
    listed = parse(fragment.text)
    assert "<html" not in fragment.text
    assert card(listed, "exported").find("a", href="/models/exported/onnx").text() == (
        "Download ONNX"
    )

    response = await client.get("/models/exported/onnx")
    assert response.status_code == 200
    assert response.content == b"onnx bytes"
    assert 'filename="exported.onnx"' in response.headers["content-disposition"]
    assert (await client.get("/api/v1/models/exported/onnx")).content == b"onnx bytes"
    assert (await client.get("/models/plain/onnx")).status_code == 404
    assert (await client.get("/api/v1/models/plain/onnx")).status_code == 404


async def test_the_export_button_queues_the_task_and_goes_to_its_page(
    app: FastAPI, client: httpx.AsyncClient, project: str, tmp_path: Path
) -> None:
    await add_model(app, tmp_path, "one")

    plain = await client.post("/models/one/onnx", data={"csrf_token": token(client)})
    htmx = await client.post("/models/one/onnx", headers=HTMX)
    api = await client.post("/api/v1/models/one/onnx")
    unknown = await client.post("/models/nope/onnx", data={"csrf_token": token(client)})

    tasks = await stores_of(app).task.list()
    exports = sorted((t for t in tasks if t.kind == "export_onnx"), key=lambda t: t.id)
    assert len(exports) == 3
    assert all(t.params == {"model": "one"} and t.dataset == PROJECT for t in exports)
    assert all(t.max_attempts == 2 for t in exports)
    assert plain.status_code == 303 and plain.headers["location"] == f"/tasks/{exports[0].id}"
    assert htmx.headers["HX-Redirect"] == f"/tasks/{exports[1].id}"
    assert api.status_code == 202 and api.json()["id"] == exports[2].id
    assert api.json()["kind"] == "export_onnx" and api.json()["status"] == "queued"
    assert unknown.status_code == 404
    assert (await client.post("/api/v1/models/nope/onnx")).status_code == 404
