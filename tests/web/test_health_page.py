"""Dataset health on the project overview: the section htmx loads into the project page, the same
section as a page of its own (no JavaScript), and its JSON twin under ``/api/v1``.

The figures are read from the parsed HTML: the counts per split and state (each linking to the
grid filtered to those images), the class bars in class order with their colours, the missing
files, the duplicates, and the near-duplicate groups with the train/val leakage warning.
"""

from __future__ import annotations

import io
import re
import sqlite3

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

HTMX = {"HX-Request": "true"}
PROJECT = "birds"
URL = f"/projects/{PROJECT}/health"
API = f"/api/v1/projects/{PROJECT}/health"


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def twin(seed: int, step: int) -> bytes:
    """Another file of the same picture (smooth blobs, a little brighter, a touch of noise): its
    perceptual hash lies a few bits from the others of its seed."""
    base = cv2.resize(make_image(8, 6, seed), (160, 120), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(1000 + step).integers(-2, 3, size=base.shape)
    return encode(np.clip(base.astype(np.int16) + 2 + step + noise, 0, 255).astype(np.uint8))


async def _store(app: FastAPI, name: str, split: str, data: bytes) -> None:
    await _stores(app).image.save_file(PROJECT, split, name, io.BytesIO(data))


def _section(response: httpx.Response) -> Element:
    return parse(response.text).find("section", id="health")


def _cell(section: Element, row: str, split: str) -> str:
    return section.find("tr", **{"data-row": row}).find("td", **{"data-split": split}).text()


def _classes(element: Element) -> set[str]:
    return set(element.attrs.get("class", "").split())


def _width(element: Element) -> float:
    found = re.search(r"width:\s*([\d.]+)%", element.attrs.get("style", ""))
    assert found, element.attrs
    return float(found.group(1))


@pytest.fixture
async def classes(app: FastAPI) -> dict[str, int]:
    """The project with classes gull, crow, tern; their ids by name."""
    info = await _stores(app).dataset.create(PROJECT, ["gull", "crow", "tern"])
    return {c.name: c.id for c in info.class_details}


@pytest.fixture
async def filled(app: FastAPI, classes: dict[str, int]) -> None:
    """train: a (3 gulls, 1 tern), b (no objects), c (a crow suggestion only), d (missing);
    val: e (1 gull), f; test: g. Near-duplicates: a, b (train) and f (val) are one picture
    (leakage); nothing else looks alike."""
    stores = _stores(app)
    await _store(app, "a.png", "train", twin(1, 0))
    await _store(app, "b.png", "train", twin(1, 2))
    await _store(app, "c.png", "train", twin(2, 0))
    await _store(app, "d.png", "train", twin(3, 0))
    await _store(app, "e.png", "val", twin(4, 0))
    await _store(app, "f.png", "val", twin(1, 4))
    await _store(app, "g.png", "test", twin(5, 0))
    gull, tern = Annotation(0, 0.5, 0.5, 0.2, 0.2), Annotation(2, 0.3, 0.3, 0.2, 0.2)
    await stores.label.save(PROJECT, "train", "a.png", [gull, gull, gull, tern])
    await stores.label.save(PROJECT, "val", "e.png", [gull])
    await stores.label.set_no_objects(PROJECT, "b.png", True)
    await stores.label.add_suggestions(PROJECT, "c.png", [Annotation(1, 0.5, 0.5, 0.2, 0.2)])
    # The reconcile's verdict on a lost file (no store method sets it).
    (stores.data_dir / "projects" / PROJECT / "images" / "train" / "d.png").unlink()
    with sqlite3.connect(stores.data_dir / "ydc.db") as conn:
        conn.execute("UPDATE image SET missing = 1 WHERE filename = 'd.png'")


# --- the section and its page -------------------------------------------------------------


async def test_htmx_gets_the_section_alone_and_a_browser_a_page_with_it(
    client: httpx.AsyncClient, filled: None
) -> None:
    fragment = await client.get(URL, headers=HTMX)
    full = await client.get(URL)

    assert fragment.status_code == full.status_code == 200
    assert not parse(fragment.text).find_all("html")
    assert _section(fragment).find("h2").text() == "Dataset health"
    page = parse(full.text)
    assert page.find_all("html")
    assert page.find("section", id="health")
    assert page.find("h1").text() == PROJECT
    assert page.find("link", href="/static/health.css")
    for response in (fragment, full):
        assert "HX-Request" in response.headers["vary"]
    refresh = _section(fragment).find("a", class_="health-refresh")
    assert refresh.attrs["hx-get"] == URL and refresh.attrs["href"] == URL
    assert refresh.attrs["hx-target"] == "#health" and refresh.attrs["hx-swap"] == "outerHTML"


async def test_the_section_counts_images_per_split_by_labelling_state(
    client: httpx.AsyncClient, filled: None
) -> None:
    section = _section(await client.get(URL, headers=HTMX))

    expected = {
        # row: (train, val, test, all)
        "images": ("4", "2", "1", "7"),
        "labelled": ("2", "1", "0", "3"),
        "unlabelled": ("2", "1", "1", "4"),
        "no_objects": ("1", "0", "0", "1"),
        "with_suggestions": ("1", "0", "0", "1"),
        "missing": ("1", "0", "0", "1"),
    }
    for row, counts in expected.items():
        found = tuple(_cell(section, row, split) for split in ("train", "val", "test", "all"))
        assert found == counts, row
    assert "3 of 7 labelled (43%)" in section.find("p", class_="health-progress").text()


async def test_each_count_links_to_the_grid_filtered_to_those_images(
    client: httpx.AsyncClient, filled: None
) -> None:
    section = _section(await client.get(URL, headers=HTMX))

    def link(row: str, split: str) -> str:
        cell = section.find("tr", **{"data-row": row}).find("td", **{"data-split": split})
        return cell.find("a").attrs["href"]

    grid = f"/projects/{PROJECT}/images"
    assert link("images", "train") == f"{grid}?split=train"
    assert link("images", "all") == grid
    assert link("unlabelled", "val") == f"{grid}?split=val&state=unlabelled"
    assert link("with_suggestions", "train") == f"{grid}?split=train&state=suggestions"
    assert link("missing", "all") == f"{grid}?state=missing"
    # A zero is not a link to an empty grid.
    zero = section.find("tr", **{"data-row": "missing"}).find("td", **{"data-split": "val"})
    assert zero.text() == "0" and not zero.find_all("a")


async def test_a_missing_file_is_called_out(client: httpx.AsyncClient, filled: None) -> None:
    section = _section(await client.get(URL, headers=HTMX))

    warning = section.find("p", id="health-missing")
    assert warning.text().startswith("1 image is missing on disk")
    assert warning.find("a").attrs["href"] == f"/projects/{PROJECT}/images?state=missing"


async def test_the_class_bars_come_in_class_order_with_their_colours_and_counts(
    app: FastAPI, client: httpx.AsyncClient, filled: None, classes: dict[str, int]
) -> None:
    section = _section(await client.get(URL, headers=HTMX))

    bars = section.find("ol", class_="class-bars").find_all("li")
    assert [b.attrs["data-class-id"] for b in bars] == [str(classes[n]) for n in classes]
    assert [b.find("span", class_="num").text() for b in bars] == ["4", "0", "1"]
    colours = {c.id: c.colour for c in await _stores(app).dataset.get_classes(PROJECT)}
    for bar in bars:
        fill = bar.find("span", class_="class-bar-fill")
        assert f"background: {colours[int(bar.attrs['data-class-id'])]}" in fill.attrs["style"]
    assert [_width(b.find("span", class_="class-bar-fill")) for b in bars] == [100.0, 0.0, 25.0]
    gull = bars[0].find("a")
    assert (gull.text(), gull.attrs["href"]) == (
        "gull",
        f"/projects/{PROJECT}/images?class_id={classes['gull']}",
    )
    assert "no-boxes" in _classes(bars[1])
    assert section.find("p", id="health-classes-empty").text().startswith("1 class has no boxes")
    assert "5 boxes" in section.find("div", id="health-classes").find("h3").text()

    # Reordered classes are drawn in their new order.
    await _stores(app).dataset.move_class(PROJECT, classes["tern"], 0)
    section = _section(await client.get(URL, headers=HTMX))
    bars = section.find("ol", class_="class-bars").find_all("li")
    assert [b.find("span", class_="class-bar-name").text() for b in bars] == [
        "tern",
        "gull",
        "crow",
    ]


async def test_near_duplicates_across_splits_raise_the_leakage_warning(
    app: FastAPI, client: httpx.AsyncClient, filled: None
) -> None:
    section = _section(await client.get(URL, headers=HTMX))

    alert = section.find("p", id="health-leak")
    assert alert.attrs["role"] == "alert"
    assert alert.text().startswith("Train/val leakage: 1 group of near-duplicates (3 images)")
    (group,) = section.find("ol", class_="dup-groups").find_all("li", class_="dup-group")
    assert "leaks" in _classes(group)
    assert [s.text() for s in group.find("p", class_="dup-head").find_all("span")] == [
        "train",
        "val",
        "spans splits",
    ]
    members = group.find("ul", class_="dup-members").find_all("li")
    assert [m.find("span", class_="dup-name").text() for m in members] == [
        "a.png",
        "b.png",
        "f.png",
    ]
    assert [m.find("span", class_="health-split").text() for m in members] == [
        "train",
        "train",
        "val",
    ]
    sha = {i.filename: i.sha256 for i in await _stores(app).image.list(PROJECT)}
    for member, name in zip(members, ["a.png", "b.png", "f.png"], strict=True):
        assert member.find("img").attrs["src"] == f"/media/{PROJECT}/thumbs/{sha[name]}.jpg"
        assert member.find("a").attrs["href"] == f"/projects/{PROJECT}/images/{name}"
    near = section.find("div", id="health-near").text()
    assert "1 group of images that look almost the same (3 images" in near
    assert "1 spans splits" in near
    exact = section.find("div", id="health-exact").text()
    assert exact.startswith("Exact duplicates None: each file is stored once")


async def test_moving_the_stray_image_into_the_groups_split_ends_the_warning(
    app: FastAPI, client: httpx.AsyncClient, filled: None
) -> None:
    assert _section(await client.get(URL, headers=HTMX)).find_all("p", id="health-leak")

    await _stores(app).image.move(PROJECT, "f.png", "val", "train")

    section = _section(await client.get(URL, headers=HTMX))
    assert not section.find_all("p", id="health-leak")
    (group,) = section.find_all("li", class_="dup-group")
    assert "leaks" not in _classes(group)
    assert "Each group lies in one split." in section.find("div", id="health-near").text()
    assert _cell(section, "images", "train") == "5"


async def test_a_group_shows_a_few_images_and_how_many_more(
    app: FastAPI, client: httpx.AsyncClient, classes: dict[str, int]
) -> None:
    for step in range(8):
        await _store(app, f"frame{step}.png", "train", twin(1, step))

    section = _section(await client.get(URL, headers=HTMX))

    members = section.find("ul", class_="dup-members").find_all("li")
    assert len(members) == 7  # six images, then the rest counted
    assert members[-1].text() == "+2 more"
    assert not section.find_all("p", id="health-leak")


async def test_an_empty_project_says_there_is_nothing_to_check(
    client: httpx.AsyncClient, classes: dict[str, int]
) -> None:
    section = _section(await client.get(URL, headers=HTMX))

    assert section.find("p", id="health-empty").text().startswith("No images yet")
    assert not section.find_all("table")


async def test_an_unknown_project_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get("/projects/nope/health")).status_code == 404
    assert (await client.get("/projects/nope/health", headers=HTMX)).status_code == 404
    assert (await client.get("/api/v1/projects/nope/health")).status_code == 404


# --- JSON -------------------------------------------------------------------------------


async def test_the_api_answers_the_same_figures(
    app: FastAPI, client: httpx.AsyncClient, filled: None, classes: dict[str, int]
) -> None:
    response = await client.get(API)

    assert response.status_code == 200
    body = response.json()
    assert body["project"] == PROJECT
    assert [s["split"] for s in body["splits"]] == ["train", "val", "test"]
    assert body["splits"][0] == {
        "split": "train",
        "images": 4,
        "labelled": 2,
        "unlabelled": 2,
        "no_objects": 1,
        "with_suggestions": 1,
        "missing": 1,
    }
    assert body["total"]["images"] == 7 and body["total"]["labelled"] == 3
    assert [(c["name"], c["index"], c["id"], c["boxes"]) for c in body["classes"]] == [
        ("gull", 0, classes["gull"], 4),
        ("crow", 1, classes["crow"], 0),
        ("tern", 2, classes["tern"], 1),
    ]
    assert body["boxes"] == 5
    assert body["exact_duplicates"] == 0
    near = body["near_duplicates"]
    assert (near["groups"], near["images"], near["leaking_groups"], near["leaking_images"]) == (
        1,
        3,
        1,
        3,
    )
    (group,) = near["shown"]
    assert group["splits"] == ["train", "val"] and group["spans_splits"] is True
    sha = {i.filename: i.sha256 for i in await _stores(app).image.list(PROJECT)}
    assert [(m["filename"], m["split"], m["thumb_url"]) for m in group["members"]] == [
        (name, split, f"/media/{PROJECT}/thumbs/{sha[name]}.jpg")
        for name, split in [("a.png", "train"), ("b.png", "train"), ("f.png", "val")]
    ]


async def test_the_api_is_documented_under_projects(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    operation = schema["paths"]["/api/v1/projects/{name}/health"]["get"]
    assert operation["tags"] == ["projects"]
    assert "/projects/{name}/health" not in schema["paths"]
