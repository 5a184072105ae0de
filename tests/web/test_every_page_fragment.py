"""Every HTML page: the full page normally and on a history restore, only its fragment for an
htmx request, and ``Vary: HX-Request`` on all three (so a cache never mixes them up)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import encode, make_image

PAGES = [
    "/",
    "/projects/birds",
    "/projects/birds/delete",
    "/projects/birds/classes/{gull}/delete",
    "/projects/birds/images",
    "/projects/birds/images?split=val&state=labelled",
    "/projects/birds/images/gull.png",
    "/projects/birds/rebalance",
    "/projects/birds/health",
    "/projects/birds/review",
    "/projects/birds/annotate/gull.png",
    "/projects/birds/annotate/gull.png?split=train&state=unlabelled",
    "/projects/birds/models",
    "/models/birds-1/delete",
    "/tasks",
    "/tasks/{task}",
    "/tasks/{training}/log",
    "/storage",
    "/no-such-page",
]


@pytest.fixture
async def seeded(app: FastAPI, tmp_path: Path) -> dict[str, int]:
    stores = app.state.stores
    info = await stores.dataset.create("birds", ["gull", "crow"])
    task = await stores.task.enqueue("export", {}, dataset="birds")
    training = await stores.task.enqueue("train", {"epochs": 3}, dataset="birds")
    image = encode(make_image(20, 10), ".png")
    await stores.image.save_file("birds", "train", "gull.png", io.BytesIO(image))
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"PK\x03\x04 weights")
    await stores.model.save("birds-1", weights, "yolo11n.yaml", "birds", 3, {})
    return {"gull": info.class_details[0].id, "task": task.id, "training": training.id}


def _has_document(html: str) -> bool:
    lowered = html.lower()
    return "<html" in lowered or "<!doctype" in lowered


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_is_whole_for_browsers_and_a_fragment_for_htmx(
    client: httpx.AsyncClient, seeded: dict[str, int], path: str
) -> None:
    url = path.format(**seeded)

    full = await client.get(url)
    fragment = await client.get(url, headers={"HX-Request": "true"})
    restore = await client.get(
        url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )

    assert full.status_code == fragment.status_code == restore.status_code
    for response in (full, fragment, restore):
        assert response.headers["content-type"].startswith("text/html")
        assert "HX-Request" in response.headers.get("vary", ""), url
    assert _has_document(full.text)
    assert _has_document(restore.text)
    assert not _has_document(fragment.text)
    assert fragment.text.strip()
