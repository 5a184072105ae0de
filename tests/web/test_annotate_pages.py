"""The annotator page: what it embeds for static/annotator.js (the image, the classes, the
labels with their ids, the pending suggestions, the version), the previous and next image under
the grid's filters, and its errors. The drawing itself is tested in a browser
(tests/e2e/test_annotator.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

HTMX = {"HX-Request": "true"}
PROJECT = "farm"
ANNOTATE = f"/projects/{PROJECT}/annotate"
LABELS_API = f"/api/v1/projects/{PROJECT}/images"


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def embedded(html: str) -> dict[str, Any]:
    """The JSON block the annotator starts from."""
    block = parse(html).find("script", id="annotator-data")
    assert block.attrs["type"] == "application/json"
    data: dict[str, Any] = json.loads("".join(str(c) for c in block.children))
    return data


def link(page: Element, element_id: str) -> str | None:
    """The href of the previous/next control, ``None`` when it is disabled."""
    found = [el for el in page.iter() if el.attrs.get("id") == element_id]
    assert len(found) == 1, element_id
    if found[0].tag != "a":
        assert found[0].attrs.get("aria-disabled") == "true"
        return None
    return found[0].attrs["href"]


@pytest.fixture
async def images(app: FastAPI) -> dict[str, int]:
    """Classes cow, sheep, goat; a.png (train, two boxes, a pending suggestion), b.png (val,
    no objects), c.png (train, unlabelled), d.png (train, a sheep box), added in that order."""
    stores = _stores(app)
    info = await stores.dataset.create(PROJECT, ["cow", "sheep", "goat"])
    for seed, (name, split) in enumerate(
        [("a.png", "train"), ("b.png", "val"), ("c.png", "train"), ("d.png", "train")]
    ):
        data = encode(make_image(40, 30, seed), ".png")
        await stores.image.save_file(PROJECT, split, name, io.BytesIO(data))
    await stores.label.save(
        PROJECT,
        "train",
        "a.png",
        [Annotation(0, 0.25, 0.25, 0.2, 0.2), Annotation(2, 0.6, 0.6, 0.4, 0.3)],
    )
    await stores.label.add_suggestions(
        PROJECT,
        "a.png",
        [Annotation(1, 0.5, 0.5, 0.1, 0.2, source="model", confidence=0.75)],
    )
    await stores.label.set_no_objects(PROJECT, "b.png", True)
    await stores.label.save(PROJECT, "train", "d.png", [Annotation(1, 0.5, 0.5, 0.5, 0.5)])
    return {c.name: c.id for c in info.class_details}


async def test_the_page_embeds_the_image_its_classes_labels_suggestions_and_version(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.get(f"{ANNOTATE}/a.png")

    assert response.status_code == 200
    data = embedded(response.text)
    image = await _stores(app).image.get(PROJECT, "a.png")
    assert data["filename"] == "a.png"
    assert data["split"] == "train"
    assert (data["width"], data["height"]) == (40, 30)
    assert data["image_url"] == f"/media/{PROJECT}/images/train/a.png"
    assert data["labels_url"] == f"{LABELS_API}/a.png/labels"
    assert data["version"] == image.version
    assert data["no_objects"] is False
    assert [(c["position"], c["name"], c["id"]) for c in data["classes"]] == [
        (0, "cow", images["cow"]),
        (1, "sheep", images["sheep"]),
        (2, "goat", images["goat"]),
    ]
    assert all(c["colour"].startswith("#") for c in data["classes"])
    stored = await _stores(app).label.load(PROJECT, "train", "a.png")
    assert [
        (b["id"], b["class_id"], b["x"], b["y"], b["width"], b["height"]) for b in data["labels"]
    ] == [(s.id, s.class_id, s.x, s.y, s.width, s.height) for s in stored]
    [suggestion] = data["suggestions"]
    assert suggestion["class_id"] == 1
    assert suggestion["confidence"] == pytest.approx(0.75)
    assert suggestion["source"] == "model"
    assert isinstance(suggestion["id"], int)
    page = parse(response.text)
    # The script comes from /static only (the content policy allows no inline script).
    scripts = page.find_all("script")
    assert [s.attrs.get("src") for s in scripts if s.attrs.get("type") == "module"] == [
        "/static/annotator.js"
    ]
    assert all(s.attrs.get("src") or s.attrs.get("type") == "application/json" for s in scripts)
    assert page.find("link", href="/static/annotator.css")
    assert page.find("img", id="ann-image").attrs["src"] == data["image_url"]
    # The classes are listed with their number keys, the first ten of them.
    keys = [b.find("kbd").text() for b in page.find("ol", id="ann-classes").find_all("button")]
    assert keys == ["1", "2", "3"]


async def test_the_embedded_data_is_what_the_labels_api_answers(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    data = embedded((await client.get(f"{ANNOTATE}/a.png")).text)
    api = await client.get(data["labels_url"])

    assert api.status_code == 200
    body = api.json()
    for key in ("filename", "split", "width", "height", "version", "no_objects"):
        assert data[key] == body[key], key
    assert data["labels"] == body["labels"]
    assert data["suggestions"] == body["suggestions"]


async def test_an_image_marked_no_objects_says_so(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.get(f"{ANNOTATE}/b.png")

    data = embedded(response.text)
    assert data["no_objects"] is True
    assert data["labels"] == data["suggestions"] == []
    toggle = parse(response.text).find("button", id="ann-no-objects")
    assert toggle.attrs["aria-pressed"] == "true"


async def test_previous_and_next_follow_every_image_without_a_filter(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    first = await client.get(f"{ANNOTATE}/a.png")
    middle = await client.get(f"{ANNOTATE}/b.png")
    last = await client.get(f"{ANNOTATE}/d.png")

    assert link(parse(first.text), "ann-previous") is None
    assert link(parse(first.text), "ann-next") == f"{ANNOTATE}/b.png"
    assert embedded(first.text)["previous"] is None
    assert link(parse(middle.text), "ann-previous") == f"{ANNOTATE}/a.png"
    assert link(parse(middle.text), "ann-next") == f"{ANNOTATE}/c.png"
    assert embedded(middle.text)["next"] == {
        "filename": "c.png",
        "url": f"{ANNOTATE}/c.png",
        "labels_url": f"{LABELS_API}/c.png/labels",
    }
    assert link(parse(last.text), "ann-next") is None
    assert embedded(last.text)["next"] is None


async def test_previous_and_next_follow_the_grids_filter_and_keep_it(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    in_train = await client.get(f"{ANNOTATE}/c.png?split=train")
    unlabelled = await client.get(f"{ANNOTATE}/a.png?state=unlabelled&split=train")
    sheep = await client.get(f"{ANNOTATE}/a.png?class_id={images['sheep']}")

    page = parse(in_train.text)
    assert link(page, "ann-previous") == f"{ANNOTATE}/a.png?split=train"  # b.png is in val
    assert link(page, "ann-next") == f"{ANNOTATE}/d.png?split=train"
    assert "train" in page.find("p", class_="ann-filter").text()
    assert page.find("a", href=f"/projects/{PROJECT}/images?split=train")  # back to the grid
    # a.png is labelled; the one unlabelled image in train comes next, its link keeps the filter.
    assert link(parse(unlabelled.text), "ann-next") == (
        f"{ANNOTATE}/c.png?split=train&state=unlabelled"
    )
    # Only d.png has an accepted sheep box (a.png's sheep is a suggestion).
    assert embedded(sheep.text)["next"]["filename"] == "d.png"


async def test_a_file_name_with_spaces_and_unicode_is_quoted_in_every_url(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    data = encode(make_image(20, 10, 9), ".png")
    await _stores(app).image.save_file(PROJECT, "train", "vache été.png", io.BytesIO(data))

    response = await client.get(f"{ANNOTATE}/vache%20%C3%A9t%C3%A9.png")

    assert response.status_code == 200
    embedded_data = embedded(response.text)
    assert embedded_data["filename"] == "vache été.png"
    assert embedded_data["labels_url"] == f"{LABELS_API}/vache%20%C3%A9t%C3%A9.png/labels"
    assert link(parse(response.text), "ann-previous") == f"{ANNOTATE}/d.png"


async def test_the_fragment_is_the_annotator_without_the_page_around_it(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    full = await client.get(f"{ANNOTATE}/a.png")
    fragment = await client.get(f"{ANNOTATE}/a.png", headers=HTMX)

    assert "HX-Request" in full.headers["vary"] and "HX-Request" in fragment.headers["vary"]
    assert "<html" in full.text.lower()
    assert "<html" not in fragment.text.lower()
    assert embedded(fragment.text) == embedded(full.text)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/projects/nowhere/annotate/a.png", 404, "nowhere"),
        (f"{ANNOTATE}/missing.png", 404, "missing.png"),
        (f"{ANNOTATE}/a.png?split=holdout", 422, "holdout"),
        (f"{ANNOTATE}/a.png?state=pretty", 422, "pretty"),
        (f"{ANNOTATE}/a.png?class_id=cow", 422, "cow"),
    ],
)
async def test_an_unknown_project_image_or_filter_is_an_error_page(
    client: httpx.AsyncClient, images: dict[str, int], path: str, status: int, says: str
) -> None:
    response = await client.get(path)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert says in parse(response.text).find("main").text()
    assert "annotator-data" not in response.text


async def test_the_image_page_links_to_its_annotator(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    page = parse((await client.get(f"/projects/{PROJECT}/images/a.png")).text)

    assert page.find("a", href=f"{ANNOTATE}/a.png").text() == "Annotate"
