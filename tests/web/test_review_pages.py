"""The review page: the project's pending suggestions (count, images, per class), the link that
walks them in the annotator, and the bulk accept above a confidence: the counts first, then
the accept once confirmed. Driven as a browser does without JS (whole pages) and with htmx
(``HX-Request``: the ``#review`` block); effects checked in the store."""

from __future__ import annotations

import io

import httpx
import pytest
from fastapi import FastAPI

from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

HTMX = {"HX-Request": "true"}
PROJECT = "birds"
PAGE = f"/projects/{PROJECT}/review"


@pytest.fixture
def stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


@pytest.fixture
async def project(stores: Stores) -> dict[str, int]:
    """Classes gull, crow, tern; their ids by name."""
    info = await stores.dataset.create(PROJECT, ["gull", "crow", "tern"])
    return {c.name: c.id for c in info.class_details}


def box(class_id: int, confidence: float | None, x: float = 0.5) -> Annotation:
    return Annotation(class_id, x, 0.5, 0.2, 0.2, confidence=confidence)


@pytest.fixture
async def suggested(stores: Stores, project: dict[str, int]) -> None:
    """a.png (no suggestion), b.png (gull 0.9, crow 0.3), c.png (gull 0.6, gull of unknown
    confidence): 4 pending suggestions on 2 images, 2 of them at 0.5 or above."""
    for seed, name in enumerate(["a.png", "b.png", "c.png"]):
        data = encode(make_image(40, 30, seed), ".png")
        await stores.image.save_file(PROJECT, "train", name, io.BytesIO(data))
    await stores.label.add_suggestions(PROJECT, "b.png", [box(0, 0.9), box(1, 0.3, x=0.2)])
    await stores.label.add_suggestions(PROJECT, "c.png", [box(0, 0.6), box(0, None, x=0.2)])


def is_document(response: httpx.Response) -> bool:
    return bool(parse(response.text).find_all("html"))


def review(response: httpx.Response) -> Element:
    return parse(response.text).find("div", id="review")


def per_class(block: Element) -> dict[str, str]:
    table = block.find("table", id="review-classes")
    return {
        tr.attrs["data-class-id"]: tr.find("td", **{"data-count": ""}).text()
        for tr in table.find_all("tr")
        if "data-class-id" in tr.attrs
    }


async def test_the_review_page_shows_the_pending_suggestions_per_class_and_the_walk_link(
    client: httpx.AsyncClient, suggested: None, project: dict[str, int]
) -> None:
    response = await client.get(PAGE)

    assert response.status_code == 200
    assert is_document(response)
    assert "HX-Request" in response.headers["vary"]
    block = review(response)
    assert block.find("dd", id="pending-suggestions").text() == "4"
    assert block.find("dd", id="pending-images").text() == "2"
    assert per_class(block) == {str(project["gull"]): "3", str(project["crow"]): "1"}
    link = block.find("a", id="review-one-by-one")
    assert link.attrs["href"] == f"/projects/{PROJECT}/annotate/b.png?state=suggestions"
    form = block.find("section", id="bulk-accept").find("form")
    assert form.attrs["action"] == f"{PAGE}/accept"
    assert form.find("input", name="min_confidence").attrs["value"] == "0.5"
    assert form.find("input", name="csrf_token").attrs["value"]
    assert parse(response.text).find("link", rel="stylesheet", href="/static/review.css")


async def test_htmx_gets_only_the_review_block(client: httpx.AsyncClient, suggested: None) -> None:
    response = await client.get(PAGE, headers=HTMX)

    assert response.status_code == 200
    assert not is_document(response)
    assert "HX-Request" in response.headers["vary"]
    assert review(response).find("dd", id="pending-suggestions").text() == "4"


async def test_a_project_without_suggestions_says_so_and_offers_no_bulk_accept(
    client: httpx.AsyncClient, project: dict[str, int]
) -> None:
    response = await client.get(PAGE)

    block = review(response)
    assert block.find("p", id="review-empty")
    assert not block.find_all("a", id="review-one-by-one")
    assert not block.find_all("section", id="bulk-accept")


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
async def test_the_threshold_first_shows_what_would_be_accepted_and_changes_nothing(
    client: httpx.AsyncClient, suggested: None, stores: Stores, headers: dict[str, str]
) -> None:
    response = await client.post(f"{PAGE}/accept", data={"min_confidence": "0.5"}, headers=headers)

    assert response.status_code == 200
    assert is_document(response) is (not headers)
    confirm = review(response).find("section", id="bulk-accept")
    assert "confirm" in confirm.attrs["class"].split()
    assert confirm.find("strong", id="confirm-suggestions").text() == "2 suggestions"
    assert confirm.find("strong", id="confirm-images").text() == "2 images"
    form = confirm.find("form")
    assert form.find("input", name="confirm").attrs["value"] == "yes"
    assert form.find("input", name="min_confidence").attrs["value"] == "0.5"
    assert await stores.label.suggestion_summary(PROJECT) == (4, 2)


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
async def test_confirming_accepts_everything_at_half_or_above_and_shows_the_result(
    client: httpx.AsyncClient, suggested: None, stores: Stores, headers: dict[str, str]
) -> None:
    versions = {n: (await stores.image.get(PROJECT, n)).version for n in ("b.png", "c.png")}

    response = await client.post(
        f"{PAGE}/accept", data={"min_confidence": "0.5", "confirm": "yes"}, headers=headers
    )

    assert response.status_code == 200
    assert is_document(response) is (not headers)
    block = review(response)
    assert "Accepted 2 suggestions on 2 images" in block.find("p", id="review-result").text()
    assert block.find("dd", id="pending-suggestions").text() == "2"
    assert await stores.label.suggestion_summary(PROJECT, 0.5) == (0, 0)
    assert await stores.label.suggestion_summary(PROJECT) == (2, 2)
    b_labels = await stores.label.load(PROJECT, "train", "b.png")
    assert [(a.class_id, a.confidence, a.source) for a in b_labels] == [(0, 0.9, "model")]
    assert [s.confidence for s in await stores.label.list_suggestions(PROJECT, "b.png")] == [0.3]
    for name, version in versions.items():
        assert (await stores.image.get(PROJECT, name)).version == version + 1


async def test_a_percentage_threshold_is_read_as_a_fraction(
    client: httpx.AsyncClient, suggested: None
) -> None:
    response = await client.post(f"{PAGE}/accept", data={"min_confidence": "85%"})

    confirm = review(response).find("section", id="bulk-accept")
    assert confirm.find("strong", id="confirm-suggestions").text() == "1 suggestion"


async def test_a_threshold_nothing_reaches_says_so(
    client: httpx.AsyncClient, suggested: None
) -> None:
    response = await client.post(f"{PAGE}/accept", data={"min_confidence": "0.95"})

    confirm = review(response).find("section", id="bulk-accept")
    assert confirm.find("p", id="confirm-none")
    assert not confirm.find_all("form")


@pytest.mark.parametrize("typed", ["", "high", "1.5", "-0.2", "nan"])
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
async def test_a_bad_threshold_is_shown_in_the_form_with_422_and_accepts_nothing(
    client: httpx.AsyncClient,
    suggested: None,
    stores: Stores,
    typed: str,
    headers: dict[str, str],
) -> None:
    response = await client.post(
        f"{PAGE}/accept", data={"min_confidence": typed, "confirm": "yes"}, headers=headers
    )

    assert response.status_code == 422
    assert is_document(response) is (not headers)
    form = review(response).find("section", id="bulk-accept").find("form")
    assert form.find("p", id="min-confidence-error").text()
    assert form.find("input", name="min_confidence").attrs["aria-invalid"] == "true"
    assert await stores.label.suggestion_summary(PROJECT) == (4, 2)


async def test_the_review_of_an_unknown_project_is_404(client: httpx.AsyncClient) -> None:
    page = await client.get("/projects/nobody/review")
    accept = await client.post(
        "/projects/nobody/review/accept", data={"min_confidence": "0.5", "confirm": "yes"}
    )

    assert (page.status_code, accept.status_code) == (404, 404)


async def test_the_bulk_accept_without_the_form_token_is_refused(
    client: httpx.AsyncClient, suggested: None, stores: Stores
) -> None:
    response = await client.post(
        f"{PAGE}/accept",
        data={"min_confidence": "0.5", "confirm": "yes"},
        headers={"X-CSRF-Token": ""},
    )

    assert response.status_code == 403
    assert await stores.label.suggestion_summary(PROJECT) == (4, 2)


async def test_the_least_confident_images_are_listed_first_and_walked_in_that_order(
    client: httpx.AsyncClient, stores: Stores, suggested: None
) -> None:
    await stores.label.add_suggestions(PROJECT, "a.png", [box(2, 0.45)])

    page = parse((await client.get(PAGE)).text)

    rows = page.find("table", id="least-confident-list").find_all("tr")[1:]
    assert [r.find("a").text() for r in rows] == ["b.png", "a.png", "c.png"]  # 0.3, 0.45, 0.6
    assert [r.find_all("td")[1].text() for r in rows] == ["0.30", "0.45", "0.60"]
    start = page.find("a", id="review-uncertain").attrs["href"]
    assert start == f"/projects/{PROJECT}/annotate/b.png?order=uncertain"

    annotator = parse((await client.get(start)).text)
    assert (
        annotator.find("a", id="ann-next")
        .attrs["href"]
        .startswith(f"/projects/{PROJECT}/annotate/a.png?")
    )
    assert annotator.find("span", id="ann-previous") is not None  # the first: nothing before
    middle = parse((await client.get(f"/projects/{PROJECT}/annotate/a.png?order=uncertain")).text)
    assert "b.png" in middle.find("a", id="ann-previous").attrs["href"]
    assert "c.png" in middle.find("a", id="ann-next").attrs["href"]


async def test_an_image_just_reviewed_goes_on_to_the_least_confident_one_left(
    client: httpx.AsyncClient, stores: Stores, suggested: None
) -> None:
    for s in await stores.label.list_suggestions(PROJECT, "b.png"):
        await stores.label.reject_suggestions(PROJECT, "b.png", [s.id])

    annotator = parse(
        (await client.get(f"/projects/{PROJECT}/annotate/b.png?order=uncertain")).text
    )

    assert "c.png" in annotator.find("a", id="ann-next").attrs["href"]
    assert "order=uncertain" in annotator.find("a", id="ann-next").attrs["href"]


async def test_an_unknown_order_is_refused(client: httpx.AsyncClient, suggested: None) -> None:
    response = await client.get(f"/projects/{PROJECT}/annotate/b.png?order=random")
    assert response.status_code in (400, 422)
    assert "not an order" in response.text
