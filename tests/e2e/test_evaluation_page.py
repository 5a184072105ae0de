"""The evaluation page in a real browser, over an evaluation result made by the real scoring
code: the tables and the mistakes list, filtered by kind; screenshots at desktop and phone
sizes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.domain.evaluation import evaluate
from tests.e2e.support import LiveServer, api, photo, shoot

NAMES = ["boat", "buoy", "gull"]


@pytest.mark.e2e
def test_an_evaluation_shows_its_scores_and_mistakes_that_open_the_annotator(
    live: LiveServer, page: Page
) -> None:
    project = "eval-harbour"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": NAMES}).is_success
        stored = http.post(
            f"/api/v1/projects/{project}/images",
            files=[("files", (f"h{n}.jpg", photo(40 + n), "image/jpeg")) for n in range(3)],
            data={"split": "val"},
        ).json()["results"]
        shas = {
            r["filename"]: http.get(f"/api/v1/projects/{project}/images/{r['filename']}").json()[
                "sha256"
            ]
            for r in stored
        }
    images = [
        ([(0, 0.3, 0.3, 0.2, 0.2), (1, 0.7, 0.7, 0.1, 0.1)], [(0, 0.9, 0.3, 0.3, 0.2, 0.2)]),
        ([(2, 0.5, 0.5, 0.3, 0.3)], [(0, 0.8, 0.5, 0.5, 0.3, 0.3), (1, 0.6, 0.1, 0.1, 0.1, 0.1)]),
        ([(0, 0.5, 0.5, 0.4, 0.4)], [(0, 0.95, 0.5, 0.5, 0.4, 0.4)]),
    ]
    scores, per_image = evaluate(images, NAMES)
    mistakes: list[dict[str, Any]] = []
    for n, ((truth, preds), found) in enumerate(zip(images, per_image, strict=True)):
        if found.any:
            mistakes.append(
                {
                    "filename": f"h{n}.jpg",
                    "sha256": shas[f"h{n}.jpg"],
                    "false_positives": [list(preds[p]) for p in found.false_positives],
                    "missed": [list(truth[t]) for t in found.missed],
                    "wrong_class": [
                        {"true": list(truth[t]), "predicted": list(preds[p])}
                        for t, p in found.wrong_class
                    ],
                }
            )
    result = {
        "model": "harbour-7",
        "project": project,
        "names": NAMES,
        **scores.to_dict(),
        "images_with_mistakes": len(mistakes),
        "mistakes": mistakes,
    }

    async def finished() -> int:
        # Queued and claimed in one transaction: the server's runner never sees it queued.
        async with live.stores.unit_of_work() as unit:
            task = await live.stores.task.enqueue(
                "evaluate", {"model": "harbour-7"}, dataset=project
            )
            claimed = await live.stores.task.claim("e2e-evaluation")
            assert claimed is not None and claimed.id == task.id
            await unit.commit()
        await live.stores.task.finish(task.id, "e2e-evaluation", status="succeeded", result=result)
        return task.id

    task_id = live.run(finished())

    page.goto(f"/evaluations/{task_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Evaluation of harbour-7")
    expect(page.locator(".eval-mistakes li")).to_have_count(2)
    shoot(page, "evaluation")
    page.get_by_role("link", name="Wrong class").click()
    expect(page.locator(".eval-mistakes li")).to_have_count(1)
    expect(page.locator(".eval-mistakes")).to_contain_text("gull → boat")
    page.locator(".eval-name").first.click()
    expect(page).to_have_url(re.compile(rf"/projects/{project}/annotate/h1\.jpg"))
