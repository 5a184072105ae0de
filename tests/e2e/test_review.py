"""The review page in a real browser: pending suggestions counted, bulk accept above a
confidence threshold with the counts shown before confirming, and the walk into the annotator."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.domain.models import Annotation
from tests.e2e.support import LiveServer, api, seed_image, shoot


@pytest.mark.e2e
def test_bulk_accept_shows_the_counts_first_then_accepts_those_above_the_threshold(
    live: LiveServer, page: Page
) -> None:
    project = "review-queue"
    with api(live) as http:
        assert http.post(
            "/api/v1/projects", json={"name": project, "classes": ["apple", "pear"]}
        ).is_success
    confidences = {"t1.png": [0.9, 0.3], "t2.png": [0.6], "t3.png": [0.2]}
    for seed, (name, scores) in enumerate(confidences.items()):
        seed_image(live, project, name, [], seed=seed)
        live.run(
            live.stores.label.add_suggestions(
                project,
                name,
                [
                    Annotation(0, 0.2 + 0.3 * i, 0.5, 0.2, 0.2, confidence=c)
                    for i, c in enumerate(scores)
                ],
            )
        )

    page.goto(f"/projects/{project}")
    page.get_by_role("link", name="Review suggestions").click()
    expect(page.locator("#pending-images")).to_have_text("3")
    expect(page.locator("#least-confident-list tbody a")).to_have_text(
        ["t3.png", "t1.png", "t2.png"]
    )
    shoot(page, "review-queue")
    page.locator("#min-confidence").fill("0.5")
    page.get_by_role("button", name="Show the count…").click()
    accept = page.get_by_role("button", name="Accept 2 suggestions")
    expect(accept).to_be_visible()
    shoot(page, "review-confirm")
    assert all(not live.run(live.stores.label.load(project, "train", n)) for n in confidences)

    accept.click()

    expect(page.locator("#pending-images")).to_have_text("2")  # t1 (0.3) and t3 (0.2) wait
    kept = {n: len(live.run(live.stores.label.load(project, "train", n))) for n in confidences}
    assert kept == {"t1.png": 1, "t2.png": 1, "t3.png": 0}

    page.locator("#review-one-by-one").click()
    expect(page).to_have_url(f"{live.url}/projects/{project}/annotate/t1.png?state=suggestions")

    page.goto(f"/projects/{project}/review")
    page.get_by_role("link", name="Review least confident first").click()
    expect(page).to_have_url(re.compile(r"/annotate/t3\.png\?order=uncertain$"))
    expect(page.locator(".ann-filter")).to_contain_text("least confident first")
    page.locator("#ann-next").click()
    expect(page).to_have_url(re.compile(r"/annotate/t1\.png\?order=uncertain$"))
