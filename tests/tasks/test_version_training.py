"""Acceptance: a model trained one epoch on a dataset version (built and trained by task workers
through the API) records the version it learnt from, and the models page shows it."""

from __future__ import annotations

from typing import Any

import yaml

from app.config import Settings
from app.domain.stores import Stores
from tests.tasks.test_durable_tasks import serving
from tests.tasks.test_training import PROJECT, follow, import_coco8, model_row
from tests.web.htmltree import parse


async def test_a_model_trained_one_epoch_on_a_version_shows_that_version(
    settings: Settings, stores: Stores
) -> None:
    await import_coco8(stores)
    recipe = {"preprocessing": {"resize": 64, "resize_mode": "stretch"}, "seed": 1}

    async with serving(settings) as (_, client):
        built = await client.post(
            "/api/v1/versions", json={"name": "coco8-v1", "projects": [PROJECT], "recipe": recipe}
        )
        assert built.status_code == 202, built.text
        seen: list[dict[str, Any]] = []
        build = await follow(client, built.json()["task"]["id"], within=120, seen=seen)
        assert build["status"] == "succeeded", build
        queued = await client.post(
            f"/api/v1/projects/{PROJECT}/train",
            json={
                "base": "yolo11n.yaml",
                "epochs": 1,
                "imgsz": 64,
                "batch": 2,
                "version": "coco8-v1",
            },
        )
        assert queued.status_code == 202, queued.text
        task = await follow(client, queued.json()["id"], within=300, seen=seen)
        models_page = (await client.get(f"/projects/{PROJECT}/models")).text
        version = (await client.get("/api/v1/versions/coco8-v1")).json()

    assert task["status"] == "succeeded", task
    name = task["result"]["model"]
    assert model_row(settings, name)["trained_on"] == "version:coco8-v1"
    assert task["result"]["snapshot"]["version"] == "coco8-v1"
    assert task["result"]["snapshot"]["images"] == version["counts"]["images"]
    assert task["result"]["snapshot"]["classes"] == version["classes"]
    card = parse(models_page).find("article", id=f"model-{name}")
    link = card.find("a", class_="model-version")
    assert link.attrs["href"] == "/versions/coco8-v1" and link.text() == "coco8-v1"
    # Ultralytics' label caches went into the training's own links, not into the version.
    folder = settings.data_dir / "versions" / "coco8-v1"
    assert not list(folder.rglob("*.cache"))
    trained = yaml.safe_load(
        (
            settings.data_dir / "training" / f"task-{task['id']}" / "dataset" / "data.yaml"
        ).read_text()
    )
    assert trained["names"] == dict(enumerate(version["classes"]))
    assert trained["path"] == str(settings.data_dir / "training" / f"task-{task['id']}" / "dataset")
