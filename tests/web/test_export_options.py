"""Export options over HTTP: the API body, the export box's form (with and without htmx) and
the 422s for a format or split that does not exist or no split at all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.domain.export_formats import FORMATS
from app.domain.models import SPLITS
from app.domain.stores import Stores
from tests.web.htmltree import parse

HTMX = {"HX-Request": "true"}


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def _birds(app: FastAPI) -> None:
    await stores_of(app).dataset.create("birds", ["gull"])


async def test_the_api_queues_an_export_with_the_chosen_splits_and_format(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    response = await client.post(
        "/api/v1/projects/birds/export", json={"splits": ["val", "train"], "format": "yolo11"}
    )

    assert response.status_code == 202
    [task] = await stores_of(app).task.list()
    assert task.id == response.json()["id"]
    assert task.params == {"splits": ["train", "val"], "format": "yolo11"}


async def test_the_api_without_a_body_exports_everything_as_ultralytics(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    response = await client.post("/api/v1/projects/birds/export")

    assert response.status_code == 202
    [task] = await stores_of(app).task.list()
    assert task.params == {"splits": list(SPLITS), "format": "ultralytics"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"format": "voc"}, "no export format 'voc'"),
        ({"splits": []}, "at least one split"),
        ({"splits": ["train", "holdout"]}, "no split 'holdout'"),
    ],
)
async def test_the_api_refuses_bad_options_with_a_422_and_queues_nothing(
    app: FastAPI, client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    await _birds(app)

    response = await client.post("/api/v1/projects/birds/export", json=body)

    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert await stores_of(app).task.list() == []


async def test_the_export_box_offers_every_split_ticked_and_every_format(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    page = parse((await client.get("/projects/birds")).text)

    box = page.find("section", id="export")
    ticks = box.find_all("input", type="checkbox", name="splits")
    assert [t.attrs["value"] for t in ticks] == list(SPLITS)
    assert all("checked" in t.attrs for t in ticks)
    options = box.find("select", name="format").find_all("option")
    assert [o.attrs["value"] for o in options] == list(FORMATS)
    assert "selected" in options[0].attrs
    form = box.find("form", class_="export-form")
    assert form.attrs["method"] == "post"
    assert form.attrs["hx-post"] == form.attrs["action"] == "/projects/birds/export"


async def test_the_export_box_form_queues_the_ticked_splits_in_the_chosen_format(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    response = await client.post(
        "/projects/birds/export",
        data={"splits": ["test", "val"], "format": "coco"},
        headers=HTMX,
    )

    assert response.status_code == 200
    [task] = await stores_of(app).task.list()
    assert task.params == {"splits": ["val", "test"], "format": "coco"}
    assert parse(response.text).find("article", id=f"task-{task.id}")


async def test_the_export_box_form_without_javascript_goes_to_the_task_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    response = await client.post(
        "/projects/birds/export", data={"splits": ["train"], "format": "yolo11"}
    )

    assert response.status_code == 303
    [task] = await stores_of(app).task.list()
    assert response.headers["location"] == f"/tasks/{task.id}"
    assert task.params == {"splits": ["train"], "format": "yolo11"}


async def test_the_export_box_with_no_split_ticked_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    page = await client.post("/projects/birds/export", data={"format": "ultralytics"})
    fragment = await client.post(
        "/projects/birds/export", data={"format": "ultralytics"}, headers=HTMX
    )

    assert page.status_code == fragment.status_code == 422
    assert "<html" in page.text
    assert "at least one split" in parse(page.text).text()
    assert fragment.headers["hx-reswap"] == "none"  # static/app.js shows the message
    assert "at least one split" in parse(fragment.text).text()
    assert await stores_of(app).task.list() == []


async def test_the_export_box_refuses_an_unknown_format(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _birds(app)

    response = await client.post("/projects/birds/export", data={"splits": "train", "format": "x"})

    assert response.status_code == 422
    assert "no export format 'x'" in parse(response.text).text()
    assert await stores_of(app).task.list() == []
