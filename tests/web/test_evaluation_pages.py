"""The evaluation page and API over a finished evaluation task's result, and the refusals of
starting one (unknown model, no labelled val images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.domain.evaluation import evaluate
from app.domain.stores import Stores
from tests.web.htmltree import parse

NAMES = ["cat", "dog"]


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def finished_evaluation(stores: Stores) -> int:
    """An evaluate task finished with a result made by the real scoring code."""
    await stores.dataset.create("pets", NAMES)
    images = [
        ([(0, 0.2, 0.2, 0.2, 0.2), (1, 0.7, 0.7, 0.2, 0.2)], [(0, 0.9, 0.2, 0.2, 0.2, 0.2)]),
        ([(1, 0.5, 0.5, 0.3, 0.3)], [(0, 0.8, 0.5, 0.5, 0.3, 0.3)]),
    ]
    scores, _ = evaluate(images, NAMES)
    result: dict[str, Any] = {
        "model": "pets-1",
        "project": "pets",
        "names": NAMES,
        **scores.to_dict(),
        "images_with_mistakes": 2,
        "mistakes": [
            {
                "filename": "a.jpg",
                "sha256": "a" * 64,
                "false_positives": [],
                "missed": [[1, 0.7, 0.7, 0.2, 0.2]],
                "wrong_class": [],
            },
            {
                "filename": "b.jpg",
                "sha256": "b" * 64,
                "false_positives": [],
                "missed": [],
                "wrong_class": [
                    {"true": [1, 0.5, 0.5, 0.3, 0.3], "predicted": [0, 0.8, 0.5, 0.5, 0.3, 0.3]}
                ],
            },
        ],
    }
    task = await stores.task.enqueue("evaluate", {"model": "pets-1"}, dataset="pets")
    claimed = await stores.task.claim("w")
    assert claimed is not None and claimed.id == task.id
    await stores.task.finish(task.id, "w", status="succeeded", result=result)
    return task.id


async def test_the_evaluation_page_shows_scores_the_matrix_and_mistakes_linking_the_annotator(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    task_id = await finished_evaluation(stores_of(app))

    page = parse((await client.get(f"/evaluations/{task_id}")).text)

    rows = page.find("table", class_="confusion").find_all("tr")
    # header + cat + dog + background; each true column adds up to the class's boxes.
    cells = [[td.text() for td in row.find_all("td")] for row in rows[1:]]
    assert [sum(int(r[c]) for r in cells) for c in range(2)] == [1, 2]
    links = [a.attrs["href"] for a in page.find("ul", class_="eval-mistakes").find_all("a")]
    assert "/projects/pets/annotate/a.jpg" in links
    assert "cat" in page.find("ul", class_="eval-mistakes").text()  # dog → cat

    wrong = parse((await client.get(f"/evaluations/{task_id}?kind=wrong_class")).text)
    names = [a.text() for a in wrong.find_all("a", class_="eval-name")]
    assert names == ["b.jpg"]
    assert (await client.get(f"/evaluations/{task_id}?kind=nonsense")).status_code == 422


async def test_the_api_gives_the_result_and_refuses_what_it_cannot_evaluate(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    stores = stores_of(app)
    task_id = await finished_evaluation(stores)

    result = (await client.get(f"/api/v1/evaluations/{task_id}")).json()
    assert result["boxes"] == 3
    assert len(result["confusion"]) == 3

    unknown = await client.post("/api/v1/models/nobody/evaluate")
    assert unknown.status_code == 404
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"PK\x03\x04 not really weights")
    await stores.model.save("pets-2", weights, "yolo11n.yaml", "pets", 1, {})
    refused = await client.post("/api/v1/models/pets-2/evaluate")
    assert refused.status_code == 422
    assert "no labelled val images" in refused.json()["detail"]
