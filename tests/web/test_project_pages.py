"""The projects list and a project's page: create form, class editor, confirmations.

Each form is driven through the page routes the way a browser does it: without JS (a 303 back)
and with htmx (the fragment comes back in place). Effects are checked in the store and, where
labels move, in the label mirror file.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.domain.models import Annotation, ClassInfo
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.web.htmltree import Element, parse

HTMX = {"HX-Request": "true"}
HISTORY_RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def _project(app: FastAPI, name: str, classes: list[str]) -> dict[str, int]:
    """Create a project through the store; the ids of its classes by name."""
    info = await _stores(app).dataset.create(name, classes)
    return {c.name: c.id for c in info.class_details}


async def _classes(app: FastAPI, name: str) -> list[ClassInfo]:
    return await _stores(app).dataset.get_classes(name)


async def _names(app: FastAPI, name: str) -> list[str]:
    return [c.name for c in await _classes(app, name)]


async def _image_with_boxes(
    app: FastAPI, project: str, filename: str, class_indices: list[int], seed: int = 0
) -> None:
    """Store an image in train with one accepted box per given class index."""
    stores = _stores(app)
    await stores.image.save_file(
        project, "train", filename, io.BytesIO(encode(make_image(seed=seed)))
    )
    boxes = [Annotation(i, 0.5, 0.5, 0.2, 0.2) for i in class_indices]
    await stores.label.save(project, "train", filename, boxes)


def _mirror_classes(projects_dir: Path, project: str, filename: str) -> list[int]:
    """The class indices in the image's label file, line by line."""
    text = (projects_dir / project / "labels" / "train" / f"{Path(filename).stem}.txt").read_text()
    return [int(line.split()[0]) for line in text.splitlines() if line.strip()]


def _is_full_page(response: httpx.Response) -> bool:
    return bool(parse(response.text).find_all("html"))


def _editor(response: httpx.Response) -> Element:
    return parse(response.text).find("section", id="classes")


def _class_item(response: httpx.Response, class_id: int) -> Element:
    return parse(response.text).find("li", id=f"class-{class_id}")


def _value(element: Element, tag: str, name: str) -> str:
    """The value of the named input (or the text of the named textarea) inside ``element``."""
    field = element.find(tag, name=name)
    if tag == "textarea":
        return "".join(c for c in field.children if isinstance(c, str))
    return field.attrs.get("value", "")


# --- the projects list -------------------------------------------------------------------------


async def test_the_index_links_each_project_and_shows_no_task_table(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", ["gull"])

    response = await client.get("/")

    document = parse(response.text)
    link = document.find("td", class_="name").find("a")
    assert link.attrs["href"] == "/projects/birds"
    nav = document.find("header").find("nav")
    assert nav.find("a", href="/").attrs.get("aria-current") == "page"
    assert document.find_all("table", id="tasks") == []
    assert document.find("form", id="create-project").attrs["action"] == "/projects"


async def test_creating_a_project_with_the_form_redirects_to_its_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/projects",
        data={"name": "birds", "classes": "gull\n\n  crow \n", "description": "Sea birds"},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/projects/birds"
    info = await _stores(app).dataset.get("birds")
    assert info is not None
    assert info.classes == ["gull", "crow"]
    assert info.description == "Sea birds"


async def test_creating_a_project_with_htmx_answers_hx_redirect(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post("/projects", data={"name": "cars", "classes": ""}, headers=HTMX)

    assert response.headers["hx-redirect"] == "/projects/cars"
    assert await _stores(app).dataset.get("cars") is not None


async def test_a_bad_name_with_htmx_comes_back_as_the_form_with_the_message(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/projects", data={"name": "my birds", "classes": "gull"}, headers=HTMX
    )

    assert response.status_code == 422
    assert response.headers["vary"] == "HX-Request"
    assert not _is_full_page(response)
    form = parse(response.text).find("form", id="create-project")
    assert form.attrs["hx-target"] == "this"
    assert form.attrs["hx-swap"] == "outerHTML"
    assert "contains a space" in form.find("p", class_="error").text()
    assert form.find("input", name="name").attrs.get("aria-invalid") == "true"
    assert _value(form, "input", "name") == "my birds"
    assert await _stores(app).dataset.list() == []


async def test_a_bad_class_list_without_js_is_the_full_page_keeping_what_was_typed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    typed = {"name": "birds", "classes": "gull\nGull", "description": "twice"}

    response = await client.post("/projects", data=typed)

    assert response.status_code == 422
    assert _is_full_page(response)
    form = parse(response.text).find("form", id="create-project")
    assert "given twice" in form.find("p", class_="error").text()
    assert form.find("textarea", name="classes").attrs.get("aria-invalid") == "true"
    assert _value(form, "input", "name") == "birds"
    assert _value(form, "textarea", "classes") == "gull\nGull"
    assert _value(form, "textarea", "description") == "twice"
    assert await _stores(app).dataset.list() == []


async def test_a_taken_name_is_shown_at_the_name_field(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", [])

    response = await client.post("/projects", data={"name": "Birds"}, headers=HTMX)

    assert response.status_code == 422
    form = parse(response.text).find("form", id="create-project")
    assert form.find("input", name="name").attrs.get("aria-invalid") == "true"
    assert "already exists" in form.find("p", class_="error").text()


async def test_the_create_form_works_with_only_its_hidden_csrf_field(app: FastAPI) -> None:
    # A browser without JS sends the token in the form, not in a header.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        form = parse((await browser.get("/")).text).find("form", id="create-project")
        token = _value(form, "input", "csrf_token")

        response = await browser.post(
            "/projects", data={"csrf_token": token, "name": "birds", "classes": "gull"}
        )

    assert response.status_code == 303
    assert await _names(app, "birds") == ["gull"]


# --- the project page and its class editor ------------------------------------------------------


async def test_the_project_page_shows_the_counts_and_the_classes_in_order(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull", "crow"])
    await _image_with_boxes(app, "birds", "a.png", [0])

    response = await client.get("/projects/birds")

    assert response.status_code == 200
    document = parse(response.text)
    assert document.find("h1").text() == "birds"
    counts = document.find("dl", id="counts")
    assert counts.find("dd", **{"data-split": "train"}).text() == "1"
    assert counts.find("dd", **{"data-split": "val"}).text() == "0"
    items = document.find("ol", class_="class-list").find_all("li", class_="class-item")
    assert [li.attrs["id"] for li in items] == [f"class-{ids['gull']}", f"class-{ids['crow']}"]
    first = items[0]
    assert first.find("span", class_="index").text() == "0"
    assert first.find("span", class_="swatch").attrs["style"].startswith("background: #")
    assert _value(first, "input", "class_name") == "gull"
    assert document.find_all("section", id="export")  # the tasks developer's export box


async def test_every_class_action_is_a_csrf_form_that_htmx_swaps_into_the_editor(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", ["gull", "crow"])

    editor = _editor(await client.get("/projects/birds"))

    forms = editor.find_all("form")
    # Per class: rename, colour, up, down, merge, delete; then the add form.
    assert len(forms) == 2 * 6 + 1
    for form in forms:
        assert form.attrs["method"] == "post"
        assert form.attrs["hx-post"] == form.attrs["action"]
        assert form.attrs["hx-target"] == "#classes"
        assert form.attrs["hx-swap"].split()[0] == "outerHTML"
        assert form.find("input", name="csrf_token").attrs["value"]


async def test_adding_a_class_without_js_redirects_back_to_the_project(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", ["gull"])

    response = await client.post("/projects/birds/classes", data={"class_name": " crow "})

    assert response.status_code == 303
    assert response.headers["location"] == "/projects/birds"
    assert await _names(app, "birds") == ["gull", "crow"]


async def test_adding_a_class_with_htmx_answers_the_new_editor(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", ["gull"])

    response = await client.post(
        "/projects/birds/classes", data={"class_name": "crow"}, headers=HTMX
    )

    assert response.status_code == 200
    assert not _is_full_page(response)
    names = [_value(li, "input", "class_name") for li in _editor(response).find_all("li")]
    assert names == ["gull", "crow"]
    assert await _names(app, "birds") == ["gull", "crow"]


async def test_adding_a_duplicate_class_shows_the_message_in_the_editor(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", ["gull"])

    fragment = await client.post(
        "/projects/birds/classes", data={"class_name": "GULL"}, headers=HTMX
    )
    page = await client.post("/projects/birds/classes", data={"class_name": "GULL"})

    assert fragment.status_code == 422
    assert not _is_full_page(fragment)
    add_form = _editor(fragment).find("form", class_="add-class")
    assert "already has a class 'gull'" in add_form.find("p", class_="error").text()
    assert _value(add_form, "input", "class_name") == "GULL"
    assert page.status_code == 422
    assert _is_full_page(page)
    assert _editor(page).find("form", class_="add-class").find_all("p", class_="error")
    assert await _names(app, "birds") == ["gull"]


async def test_renaming_a_class_keeps_its_id(app: FastAPI, client: httpx.AsyncClient) -> None:
    ids = await _project(app, "birds", ["gull", "crow"])

    response = await client.post(
        f"/projects/birds/classes/{ids['gull']}/rename", data={"class_name": "seagull"}
    )

    assert response.status_code == 303
    assert [(c.id, c.name) for c in await _classes(app, "birds")] == [
        (ids["gull"], "seagull"),
        (ids["crow"], "crow"),
    ]


async def test_an_empty_or_taken_name_is_shown_next_to_the_class(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull", "crow"])
    url = f"/projects/birds/classes/{ids['crow']}/rename"

    empty = await client.post(url, data={"class_name": "  "}, headers=HTMX)
    taken = await client.post(url, data={"class_name": "Gull"}, headers=HTMX)

    assert empty.status_code == 422
    item = _class_item(empty, ids["crow"])
    assert "empty" in item.find("p", class_="error").text()
    assert item.find("input", name="class_name").attrs.get("aria-invalid") == "true"
    assert _class_item(empty, ids["gull"]).find_all("p", class_="error") == []
    assert taken.status_code == 422
    assert "already has a class" in _class_item(taken, ids["crow"]).find("p", class_="error").text()
    assert _value(_class_item(taken, ids["crow"]), "input", "class_name") == "Gull"
    assert await _names(app, "birds") == ["gull", "crow"]


async def test_recolouring_a_class_saves_the_colour(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull"])

    response = await client.post(
        f"/projects/birds/classes/{ids['gull']}/colour", data={"colour": "#12AB34"}, headers=HTMX
    )

    assert response.status_code == 200
    swatch = _class_item(response, ids["gull"]).find("span", class_="swatch")
    assert swatch.attrs["style"] == "background: #12ab34"
    assert (await _classes(app, "birds"))[0].colour == "#12ab34"


async def test_a_bad_colour_is_a_422_in_the_editor(app: FastAPI, client: httpx.AsyncClient) -> None:
    ids = await _project(app, "birds", ["gull"])
    before = (await _classes(app, "birds"))[0].colour

    response = await client.post(
        f"/projects/birds/classes/{ids['gull']}/colour", data={"colour": "red"}, headers=HTMX
    )

    assert response.status_code == 422
    assert "#rrggbb" in _class_item(response, ids["gull"]).find("p", class_="error").text()
    assert (await _classes(app, "birds"))[0].colour == before


async def test_moving_a_class_down_rewrites_the_label_file(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    ids = await _project(app, "birds", ["gull", "crow", "owl"])
    await _image_with_boxes(app, "birds", "a.png", [0, 2])
    editor = _editor(await client.get("/projects/birds"))
    down = next(
        f
        for f in editor.find_all("form", action=f"/projects/birds/classes/{ids['gull']}/move")
        if "down" in f.find("button").text().casefold()
    )

    response = await client.post(
        down.attrs["action"], data={"position": _value(down, "input", "position")}
    )

    assert response.status_code == 303
    assert await _names(app, "birds") == ["crow", "gull", "owl"]
    assert _mirror_classes(projects_dir, "birds", "a.png") == [1, 2]


async def test_moving_a_class_up_with_htmx_answers_the_reordered_editor(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    ids = await _project(app, "birds", ["gull", "crow", "owl"])
    await _image_with_boxes(app, "birds", "a.png", [0, 2])

    response = await client.post(
        f"/projects/birds/classes/{ids['owl']}/move", data={"position": "0"}, headers=HTMX
    )

    assert response.status_code == 200
    items = _editor(response).find_all("li", class_="class-item")
    assert [li.attrs["id"] for li in items] == [
        f"class-{ids['owl']}",
        f"class-{ids['gull']}",
        f"class-{ids['crow']}",
    ]
    assert await _names(app, "birds") == ["owl", "gull", "crow"]
    assert _mirror_classes(projects_dir, "birds", "a.png") == [1, 0]


async def test_the_first_class_cannot_move_up_nor_the_last_down(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull", "crow"])

    response = await client.get("/projects/birds")

    def disabled(class_id: int) -> list[bool]:
        item = _class_item(response, class_id)
        return ["disabled" in b.attrs for b in item.find("div", class_="move").find_all("button")]

    assert disabled(ids["gull"]) == [True, False]
    assert disabled(ids["crow"]) == [False, True]


async def test_merging_a_class_moves_its_labels_and_removes_it(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    ids = await _project(app, "birds", ["gull", "crow", "owl"])
    await _image_with_boxes(app, "birds", "a.png", [0, 1, 2])
    merge = _class_item(await client.get("/projects/birds"), ids["gull"]).find(
        "form", action=f"/projects/birds/classes/{ids['gull']}/merge"
    )
    targets = [o.attrs["value"] for o in merge.find("select", name="target_id").find_all("option")]
    assert targets == [str(ids["crow"]), str(ids["owl"])]  # never itself
    assert "gull" in merge.find("label").text() and "delete" in merge.find("button").text()

    response = await client.post(merge.attrs["action"], data={"target_id": str(ids["owl"])})

    assert response.status_code == 303
    assert [(c.id, c.position) for c in await _classes(app, "birds")] == [
        (ids["crow"], 0),
        (ids["owl"], 1),
    ]
    assert sorted(_mirror_classes(projects_dir, "birds", "a.png")) == [0, 1, 1]


async def test_merging_a_class_into_itself_is_refused_in_the_editor(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull", "crow"])

    response = await client.post(
        f"/projects/birds/classes/{ids['gull']}/merge",
        data={"target_id": str(ids["gull"])},
        headers=HTMX,
    )

    assert response.status_code == 422
    assert "itself" in _class_item(response, ids["gull"]).find("p", class_="error").text()
    assert await _names(app, "birds") == ["gull", "crow"]


async def test_a_class_without_labels_is_deleted_at_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull", "crow"])

    response = await client.post(f"/projects/birds/classes/{ids['gull']}/delete", headers=HTMX)

    assert response.status_code == 200
    assert [li.attrs["id"] for li in _editor(response).find_all("li")] == [f"class-{ids['crow']}"]
    assert await _names(app, "birds") == ["crow"]


@pytest.fixture
async def gulls(app: FastAPI) -> AsyncIterator[dict[str, int]]:
    """birds: gull has 3 boxes and 1 suggestion; one image has only gull boxes."""
    ids = await _project(app, "birds", ["gull", "crow"])
    await _image_with_boxes(app, "birds", "only-gulls.png", [0, 0], seed=1)
    await _image_with_boxes(app, "birds", "mixed.png", [0, 1], seed=2)
    await _stores(app).label.add_suggestions(
        "birds", "mixed.png", [Annotation(0, 0.3, 0.3, 0.1, 0.1, status="pending")]
    )
    yield ids


async def test_the_delete_confirmation_counts_labels_suggestions_and_images_left_empty(
    client: httpx.AsyncClient, gulls: dict[str, int]
) -> None:
    response = await client.get(f"/projects/birds/classes/{gulls['gull']}/delete")

    assert response.status_code == 200
    section = parse(response.text).find("section", class_="confirm")
    assert section.find("li", id="usage-labels").text().startswith("3 labels")
    assert section.find("li", id="usage-suggestions").text().startswith("1 suggestion ")
    assert section.find("li", id="usage-images").text().startswith("1 image ")
    confirm = section.find("form")
    assert confirm.attrs["action"] == f"/projects/birds/classes/{gulls['gull']}/delete"
    assert _value(confirm, "input", "confirm") == "yes"
    assert section.find("a", class_="button").attrs["href"] == "/projects/birds"


async def test_deleting_a_class_with_labels_without_confirm_only_asks(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path, gulls: dict[str, int]
) -> None:
    url = f"/projects/birds/classes/{gulls['gull']}/delete"

    in_place = await client.post(url, headers=HTMX)
    page = await client.post(url)

    assert in_place.status_code == 200
    assert not _is_full_page(in_place)
    question = parse(in_place.text).find("section", id="classes")
    assert "confirm" in question.attrs["class"].split()
    assert question.find("form").attrs["hx-target"] == "#classes"
    assert page.status_code == 200
    assert _is_full_page(page)
    assert "hx-post" not in parse(page.text).find("section", class_="confirm").find("form").attrs
    assert await _names(app, "birds") == ["gull", "crow"]
    assert sorted(_mirror_classes(projects_dir, "birds", "mixed.png")) == [0, 1]


async def test_confirming_the_delete_removes_the_class_and_its_boxes(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path, gulls: dict[str, int]
) -> None:
    response = await client.post(
        f"/projects/birds/classes/{gulls['gull']}/delete", data={"confirm": "yes"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/projects/birds"
    assert await _names(app, "birds") == ["crow"]
    assert _mirror_classes(projects_dir, "birds", "mixed.png") == [0]
    # Left with no box, the image is unlabelled again: no (empty) label file.
    assert not (projects_dir / "birds" / "labels" / "train" / "only-gulls.txt").exists()


async def test_class_actions_on_an_unknown_class_or_project_are_404s(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ids = await _project(app, "birds", ["gull"])
    other = await _project(app, "cars", ["wheel"])

    unknown_project = await client.post(f"/projects/nowhere/classes/{ids['gull']}/rename")
    foreign_class = await client.post(
        f"/projects/birds/classes/{other['wheel']}/rename", data={"class_name": "x"}
    )
    foreign_delete = await client.get(f"/projects/birds/classes/{other['wheel']}/delete")

    assert unknown_project.status_code == 404
    assert foreign_class.status_code == 404
    assert foreign_delete.status_code == 404
    assert await _names(app, "cars") == ["wheel"]


# --- deleting a project --------------------------------------------------------------------------


async def test_the_project_delete_confirmation_counts_images_labels_and_models(
    client: httpx.AsyncClient, gulls: dict[str, int]
) -> None:
    page = parse((await client.get("/projects/birds")).text)
    link = page.find("a", href="/projects/birds/delete")
    assert "Delete project" in link.text()

    response = await client.get(link.attrs["href"])

    assert response.status_code == 200
    section = parse(response.text).find("section", id="confirm-delete-project")
    assert section.find("li", id="usage-images").text().startswith("2 images")
    assert section.find("li", id="usage-labels").text().startswith("4 labels and 1 suggestion")
    assert section.find("li", id="usage-models").text().startswith("0 trained models")


async def test_a_project_is_deleted_only_once_confirmed(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    await _project(app, "birds", ["gull"])

    unconfirmed = await client.post("/projects/birds/delete")
    assert unconfirmed.status_code == 200
    assert parse(unconfirmed.text).find_all("section", id="confirm-delete-project")
    assert await _stores(app).dataset.get("birds") is not None

    confirmed = await client.post("/projects/birds/delete", data={"confirm": "yes"})

    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/"
    assert await _stores(app).dataset.get("birds") is None
    assert not (projects_dir / "birds").exists()


async def test_deleting_a_project_with_htmx_answers_hx_redirect(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project(app, "birds", [])

    response = await client.post("/projects/birds/delete", data={"confirm": "yes"}, headers=HTMX)

    assert response.headers["hx-redirect"] == "/"
    assert await _stores(app).dataset.get("birds") is None


async def test_an_unknown_project_page_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/projects/nowhere")

    assert response.status_code == 404
    assert "no project named 'nowhere'" in parse(response.text).find("p", class_="error").text()


# --- full page or fragment, for every page route -----------------------------------------------

PAGES = [
    "/",
    "/projects/birds",
    "/projects/birds/delete",
    "/projects/birds/classes/{gull}/delete",
]


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_is_whole_for_a_browser_and_a_fragment_for_htmx(
    client: httpx.AsyncClient, gulls: dict[str, int], path: str
) -> None:
    url = path.format(**gulls)

    full = await client.get(url)
    fragment = await client.get(url, headers=HTMX)
    restored = await client.get(url, headers=HISTORY_RESTORE)

    assert full.status_code == fragment.status_code == restored.status_code == 200
    assert _is_full_page(full)
    assert full.headers["vary"] == "HX-Request"
    assert not _is_full_page(fragment)
    assert fragment.headers["vary"] == "HX-Request"
    assert len(parse(fragment.text).iter()) > 1  # not empty: some markup came back
    assert _is_full_page(restored)


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/projects", {"name": "planted"}),
        ("/projects/birds/classes", {"class_name": "planted"}),
        ("/projects/birds/classes/{gull}/rename", {"class_name": "planted"}),
        ("/projects/birds/classes/{gull}/delete", {"confirm": "yes"}),
        ("/projects/birds/delete", {"confirm": "yes"}),
    ],
)
async def test_a_form_post_without_the_csrf_token_is_refused(
    app: FastAPI, gulls: dict[str, int], path: str, data: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stranger:
        await stranger.get("/")  # it has the cookie, but sends no token back

        response = await stranger.post(path.format(**gulls), data=data)

    assert response.status_code == 403
    assert await _stores(app).dataset.get("planted") is None
    assert await _names(app, "birds") == ["gull", "crow"]
