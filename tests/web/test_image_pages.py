"""The image pages: upload on the project page, the splits box, the grid (filters, count,
infinite scroll, bulk move and delete with confirmation), one image's page, and rebalancing.

Each form is driven the way a browser does it: without JS (a 303, or the whole page) and with
htmx or static/upload.js (``HX-Request``: the fragment). Effects are checked in the store and on
disk.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

HTMX = {"HX-Request": "true"}
PROJECT = "shots"
PAGE = f"/projects/{PROJECT}"


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def png(seed: int, width: int = 40, height: int = 30) -> bytes:
    return encode(make_image(width, height, seed), ".png")


def classes_of(element: Element) -> set[str]:
    return set(element.attrs.get("class", "").split())


def tiles(html: str) -> list[str]:
    return [
        li.attrs["data-filename"] for li in parse(html).find_all("li") if "tile" in classes_of(li)
    ]


@pytest.fixture
async def project(app: FastAPI) -> dict[str, int]:
    """An empty project with classes cat and dog; their ids by name."""
    info = await _stores(app).dataset.create(PROJECT, ["cat", "dog"])
    return {c.name: c.id for c in info.class_details}


@pytest.fixture
async def images(app: FastAPI, project: dict[str, int]) -> dict[str, int]:
    """a.png (train, a cat box), b.png (val, no objects), c.png (train, a pending dog
    suggestion), d.png (test)."""
    stores = _stores(app)
    for seed, (name, split) in enumerate(
        [("a.png", "train"), ("b.png", "val"), ("c.png", "train"), ("d.png", "test")]
    ):
        await stores.image.save_file(PROJECT, split, name, io.BytesIO(png(seed)))
    await stores.label.save(PROJECT, "train", "a.png", [Annotation(0, 0.5, 0.5, 0.5, 0.4)])
    await stores.label.set_no_objects(PROJECT, "b.png", True)
    await stores.label.add_suggestions(
        PROJECT, "c.png", [Annotation(1, 0.25, 0.25, 0.2, 0.2, confidence=0.87)]
    )
    return project


# --- the project page -----------------------------------------------------------------------


async def test_the_project_page_has_an_upload_form_that_works_without_javascript(
    client: httpx.AsyncClient, project: dict[str, int]
) -> None:
    page = parse((await client.get(PAGE)).text)

    form = page.find("form", id="upload-form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == f"{PAGE}/upload"
    assert form.attrs["enctype"] == "multipart/form-data"
    picker = form.find("input", type="file")
    assert picker.attrs["name"] == "files"
    assert "multiple" in picker.attrs
    assert ".zip" in picker.attrs["accept"]
    assert [o.attrs["value"] for o in form.find("select", name="split").find_all("option")] == [
        "",
        "train",
        "val",
        "test",
    ]
    assert page.find("script", src="/static/upload.js")


async def test_the_splits_box_warns_when_val_is_empty(
    app: FastAPI, client: httpx.AsyncClient, project: dict[str, int]
) -> None:
    empty = parse((await client.get(PAGE)).text)
    assert not empty.find_all("p", id="val-empty")  # nothing to warn about yet

    await _stores(app).image.save_file(PROJECT, "train", "x.png", io.BytesIO(png(1)))
    page = parse((await client.get(PAGE)).text)

    assert "Val is empty" in page.find("p", id="val-empty").text()
    assert page.find("dd", **{"data-split": "train"}).text() == "1"
    assert page.find("a", href=f"{PAGE}/rebalance")


async def test_the_splits_box_refreshes_itself_with_the_head_counts_out_of_band(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.get(f"{PAGE}/splits", headers=HTMX)

    fragment = parse(response.text)
    box = fragment.find("section", id="splits")
    assert box.attrs["hx-trigger"] == "ydc:images-changed from:body"
    counts = fragment.find("dl", id="counts")
    assert counts.attrs["hx-swap-oob"] == "true"
    assert counts.find("dd", **{"data-split": "train"}).text() == "2"
    assert not fragment.find_all("p", id="val-empty")


# --- upload ---------------------------------------------------------------------------------


def _upload_files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("files", ("one.png", png(1), "image/png")),
        ("files", ("two.png", png(2), "image/png")),
        ("files", ("again.png", png(1), "image/png")),  # the bytes of one.png
        ("files", ("notes.jpg", b"these are notes, not a picture", "image/jpeg")),
    ]


async def test_upload_without_javascript_answers_the_page_with_every_result(
    app: FastAPI, client: httpx.AsyncClient, project: dict[str, int]
) -> None:
    response = await client.post(f"{PAGE}/upload", files=_upload_files(), data={"split": ""})

    assert response.status_code == 200
    page = parse(response.text)
    rows = page.find("ol", id="upload-list").find_all("li")
    outcomes = [
        (
            r.find("span", **{"class": "outcome"}).text(),
            r.find("span", **{"class": "original"}).text(),
        )
        for r in rows
    ]
    assert outcomes == [
        ("stored", "one.png"),
        ("stored", "two.png"),
        ("duplicate", "again.png"),
        ("refused", "notes.jpg"),
    ]
    assert "one.png" in rows[2].text()  # the duplicate names the image it repeats
    assert "not" in rows[3].find("span", **{"class": "detail"}).text().lower()
    totals = {
        t.attrs["data-total"]: t.text() for t in page.find_all("strong") if "data-total" in t.attrs
    }
    assert totals == {"stored": "2", "duplicate": "1", "refused": "1"}
    assert await _stores(app).image.count(PROJECT) == 2


async def test_upload_for_the_script_answers_one_batch_with_its_totals(
    client: httpx.AsyncClient, project: dict[str, int]
) -> None:
    response = await client.post(
        f"{PAGE}/upload", files=_upload_files(), data={"split": "val"}, headers=HTMX
    )

    assert response.status_code == 200
    batch = parse(response.text).find("div", **{"class": "upload-batch"})
    assert (
        batch.attrs["data-stored"],
        batch.attrs["data-duplicate"],
        batch.attrs["data-refused"],
    ) == ("2", "1", "1")
    stored = [li for li in batch.find_all("li") if "result-stored" in classes_of(li)]
    assert all("in val" in li.text() for li in stored)
    assert "<html" not in response.text.lower()


async def test_upload_with_no_file_chosen_says_so(
    client: httpx.AsyncClient, project: dict[str, int]
) -> None:
    response = await client.post(
        f"{PAGE}/upload", files=[("files", ("", b"", "application/octet-stream"))]
    )

    assert response.status_code == 422
    assert "Choose the files to upload first" in response.text


async def test_upload_to_a_project_that_does_not_exist_is_a_404(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/projects/nope/upload", files=_upload_files())

    assert response.status_code == 404


# --- the grid -------------------------------------------------------------------------------


async def test_the_grid_shows_thumbnails_by_static_url_with_the_count(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.get(f"{PAGE}/images")

    assert response.status_code == 200
    assert tiles(response.text) == ["a.png", "b.png", "c.png", "d.png"]
    page = parse(response.text)
    assert page.find("p", id="grid-count").text().startswith("4 images")
    a = await _stores(app).image.get(PROJECT, "a.png")
    img = page.find("img", src=f"/media/{PROJECT}/thumbs/{a.sha256}.jpg")
    assert img.attrs["data-fallback"] == f"/api/v1/projects/{PROJECT}/images/a.png/thumbnail"
    assert (await client.get(img.attrs["src"])).headers["content-type"] == "image/jpeg"
    assert page.find("a", href=f"{PAGE}/images/a.png")
    annotate = page.find("a", id="grid-annotate-link")
    assert annotate.attrs["href"] == f"{PAGE}/annotate/a.png"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"split": "train"}, ["a.png", "c.png"]),
        ({"state": "labelled"}, ["a.png", "b.png"]),
        ({"state": "no_objects"}, ["b.png"]),
        ({"state": "suggestions"}, ["c.png"]),
        ({"state": "unlabelled", "split": "test"}, ["d.png"]),
        ({"q": "C.PN"}, ["c.png"]),
        ({"split": "", "state": "", "class_id": "", "q": ""}, ["a.png", "b.png", "c.png", "d.png"]),
    ],
)
async def test_the_grid_filters_combine(
    client: httpx.AsyncClient,
    images: dict[str, int],
    params: dict[str, str],
    expected: list[str],
) -> None:
    response = await client.get(f"{PAGE}/images", params=params, headers=HTMX)

    assert tiles(response.text) == expected
    assert parse(response.text).find("p", id="grid-count").text().startswith(str(len(expected)))
    if expected:  # "Annotate these" starts at the first match and keeps the filters
        href = parse(response.text).find("a", id="grid-annotate-link").attrs["href"]
        assert href.startswith(f"{PAGE}/annotate/{expected[0]}")
        assert all(f"{k}={v}" in href for k, v in params.items() if v)


async def test_the_class_filter_shows_the_images_with_that_class(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    cats = await client.get(f"{PAGE}/images", params={"class_id": images["cat"]})
    dogs = await client.get(f"{PAGE}/images", params={"class_id": images["dog"]})

    assert tiles(cats.text) == ["a.png"]
    assert tiles(dogs.text) == []  # a suggestion is not a box yet
    assert "No image matches these filters" in dogs.text
    selected = parse(cats.text).find("select", name="class_id").find("option", selected="")
    assert selected.attrs["value"] == str(images["cat"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"split": "holdout"}, "There is no split 'holdout'"),
        ({"state": "blurry"}, "'blurry' is not a labelling state"),
        ({"class_id": "cat"}, "'cat' is not a class id"),
        ({"cursor": "-1"}, "is not a position"),
        ({"q": "x" * 201}, "at most 200 characters"),
    ],
)
async def test_a_bad_filter_is_a_422_that_says_why(
    client: httpx.AsyncClient, images: dict[str, int], params: dict[str, str], message: str
) -> None:
    response = await client.get(f"{PAGE}/images", params=params)

    assert response.status_code == 422
    assert message in parse(response.text).text()


async def test_the_grid_scrolls_a_page_at_a_time_by_cursor(
    app: FastAPI,
    client: httpx.AsyncClient,
    project: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.web import image_pages

    monkeypatch.setattr(image_pages, "GRID_PAGE", 2)
    stores = _stores(app)
    for i in range(5):
        await stores.image.save_file(PROJECT, "train", f"p{i}.png", io.BytesIO(png(10 + i)))

    first = await client.get(f"{PAGE}/images", params={"split": "train"})
    assert tiles(first.text) == ["p0.png", "p1.png"]
    more = parse(first.text).find("li", **{"class": "more"})
    assert more.attrs["hx-trigger"] == "revealed"
    assert more.attrs["hx-swap"] == "outerHTML"
    assert "split=train" in more.attrs["hx-get"]

    second = await client.get(more.attrs["hx-get"], headers=HTMX)
    assert tiles(second.text) == ["p2.png", "p3.png"]
    assert 'id="results"' not in second.text  # only the tiles, appended in place
    third = await client.get(
        parse(second.text).find("li", **{"class": "more"}).attrs["hx-get"], headers=HTMX
    )
    assert tiles(third.text) == ["p4.png"]
    assert "hx-trigger" not in third.text  # the last page asks for nothing more


async def test_bulk_move_moves_the_label_file_and_pins_the_images(
    app: FastAPI,
    client: httpx.AsyncClient,
    images: dict[str, int],
    projects_dir: Path,
) -> None:
    response = await client.post(
        f"{PAGE}/images/move",
        data={"filenames": ["a.png", "c.png"], "to_split": "val", "split": "train"},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert "Moved 2 images to val." in parse(response.text).find("p", **{"class": "notice"}).text()
    assert tiles(response.text) == []  # the grid keeps its filter: nothing is in train now
    a = await _stores(app).image.get(PROJECT, "a.png")
    assert (a.split, a.split_pinned) == ("val", True)
    assert (projects_dir / PROJECT / "labels" / "val" / "a.txt").is_file()
    assert not (projects_dir / PROJECT / "labels" / "train" / "a.txt").exists()
    assert (projects_dir / PROJECT / "images" / "val" / "a.png").is_file()


async def test_bulk_move_without_javascript_goes_back_to_the_filtered_grid(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.post(
        f"{PAGE}/images/move",
        data={"filenames": ["d.png"], "to_split": "train", "split": "test", "q": "d"},
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}/images?split=test&q=d"
    assert (await _stores(app).image.get(PROJECT, "d.png")).split == "train"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"to_split": "val"}, "Select at least one image first."),
        ({"to_split": "holdout", "filenames": "a.png"}, "Choose the split to move the images to"),
        ({"to_split": "val", "filenames": "nope.png"}, "nope.png"),
    ],
)
async def test_a_bad_move_changes_nothing_and_says_why(
    app: FastAPI,
    client: httpx.AsyncClient,
    images: dict[str, int],
    data: dict[str, str],
    message: str,
) -> None:
    response = await client.post(f"{PAGE}/images/move", data=data, headers=HTMX)

    assert response.status_code in (404, 422)
    assert message in parse(response.text).text()
    assert response.headers["HX-Reswap"] == "none"  # the grid stays; the page says why
    assert (await _stores(app).image.get(PROJECT, "a.png")).split == "train"


async def test_bulk_delete_asks_first_and_then_deletes_with_the_files(
    app: FastAPI,
    client: httpx.AsyncClient,
    images: dict[str, int],
    projects_dir: Path,
) -> None:
    names = {"filenames": ["a.png", "b.png"], "split": "val"}

    asked = await client.post(f"{PAGE}/images/delete", data=names, headers=HTMX)

    assert asked.status_code == 200
    confirm = parse(asked.text).find("section", id="results")
    assert "Delete 2 images?" in confirm.text()
    assert [li.text() for li in confirm.find("ul").find_all("li")] == ["a.png", "b.png"]
    form = confirm.find("form")
    hidden = [(i.attrs["name"], i.attrs["value"]) for i in form.find_all("input", type="hidden")]
    assert ("confirm", "yes") in hidden
    assert ("split", "val") in hidden
    assert await _stores(app).image.count(PROJECT) == 4  # nothing gone yet

    done = await client.post(
        f"{PAGE}/images/delete", data={**names, "confirm": "yes"}, headers=HTMX
    )

    assert done.status_code == 200
    assert "Deleted 2 images." in done.text
    assert await _stores(app).image.count(PROJECT) == 2
    assert not (projects_dir / PROJECT / "images" / "train" / "a.png").exists()
    assert not (projects_dir / PROJECT / "labels" / "train" / "a.txt").exists()


async def test_bulk_delete_without_javascript_is_a_confirmation_page(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    asked = await client.post(f"{PAGE}/images/delete", data={"filenames": "d.png"})

    assert asked.status_code == 200
    assert "<html" in asked.text.lower()
    assert "Delete 1 image?" in asked.text
    done = await client.post(f"{PAGE}/images/delete", data={"filenames": "d.png", "confirm": "yes"})
    assert done.status_code == 303
    assert await _stores(app).image.count(PROJECT) == 3


# --- one image ------------------------------------------------------------------------------


async def test_the_image_page_draws_the_boxes_and_the_suggestions_and_shows_the_metadata(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    a = await client.get(f"{PAGE}/images/a.png")
    c = await client.get(f"{PAGE}/images/c.png")

    assert a.status_code == c.status_code == 200
    page = parse(a.text)
    info = await _stores(app).image.get(PROJECT, "a.png")
    assert page.find("img", src=f"/media/{PROJECT}/images/train/a.png").attrs["width"] == "40"
    box = page.find("span", **{"class": "box"})
    assert "left: 25.0%" in box.attrs["style"] and "top: 30.0%" in box.attrs["style"]
    assert "width: 50.0%" in box.attrs["style"] and "height: 40.0%" in box.attrs["style"]
    assert box.text() == "cat"
    details = page.find("dl", **{"class": "meta-list"}).text()
    assert "40 \u00d7 30 px" in details
    assert info.sha256 in details
    suggestion = parse(c.text).find("span", class_="suggestion")
    assert suggestion.text() == "dog 0.87?"


async def test_the_image_page_moves_the_image(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.post(f"{PAGE}/images/a.png/move", data={"to_split": "test"})

    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}/images/a.png"
    info = await _stores(app).image.get(PROJECT, "a.png")
    assert (info.split, info.split_pinned) == ("test", True)


async def test_an_unknown_image_is_a_404_page(
    client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    response = await client.get(f"{PAGE}/images/zzz.png")

    assert response.status_code == 404
    assert "zzz.png" in response.text


# --- rebalance ------------------------------------------------------------------------------


async def test_rebalance_asks_first_then_queues_the_task(
    app: FastAPI, client: httpx.AsyncClient, images: dict[str, int]
) -> None:
    stores = _stores(app)

    asked = await client.post(f"{PAGE}/rebalance")
    assert "Rebalance the splits" in asked.text
    assert await stores.task.list() == []  # nothing queued without the confirmation

    done = await client.post(f"{PAGE}/rebalance", data={"confirm": "yes"})

    assert done.status_code == 303
    (task,) = await stores.task.list()
    assert (task.kind, task.dataset, task.status) == ("rebalance", PROJECT, "queued")
    assert done.headers["location"] == f"/tasks/{task.id}"
