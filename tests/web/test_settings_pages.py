"""The settings page and the preferences API: each group saved in place, refusals beside their
field with what was typed kept, YAML export and import (whole or nothing), reset; and where the
preferences reach: new projects' ratios, the auto-label form, the grid's tiles, the annotator."""

from __future__ import annotations

import json

import httpx
import yaml
from fastapi import FastAPI

from app.domain.stores import Stores
from tests.conftest import make_image
from tests.web import test_accounts as with_accounts
from tests.web.htmltree import parse

HTMX = {"HX-Request": "true"}
# The accounts tests' fixtures: the app with accounts on and one logged-in client per role.
settings_on = with_accounts.settings_on
app_on = with_accounts.app_on
as_role = with_accounts.as_role


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def keymap_form(page_html: str) -> dict[str, str]:
    """The keymap form's fields as the page shows them."""
    form = parse(page_html).find("form", id="keymap-form")
    return {
        i.attrs["name"]: i.attrs.get("value", "")
        for i in form.find_all("input")
        if i.attrs.get("name", "").startswith("keymap.")
    }


# --- the page ----------------------------------------------------------------------------------


async def test_the_settings_page_shows_every_group_with_the_defaults(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/settings")

    assert response.status_code == 200
    page = parse(response.text)
    nav = page.find("header").find("a", href="/settings")
    assert nav.attrs.get("aria-current") == "page"
    fields = keymap_form(response.text)
    assert fields["keymap.next"] == "d ArrowRight"
    assert fields["keymap.class1"] == "1"
    assert fields["keymap.redo"] == "Ctrl+Shift+z Ctrl+y"
    assert page.find("input", id="pref-split_ratios-train").attrs["value"] == "0.8"
    assert page.find("input", id="pref-autolabel-conf").attrs["value"] == "0.25"
    assert page.find("input", id="pref-autolabel-iou").attrs["value"] == "0.7"
    size = page.find("select", id="pref-thumbnail_size")
    assert [o.attrs["value"] for o in size.find_all("option") if "selected" in o.attrs] == [
        "medium"
    ]
    assert page.find("a", id="settings-export").attrs["href"] == "/settings/export"


async def test_saving_a_key_answers_the_keymap_form_and_the_api_shows_it(
    client: httpx.AsyncClient,
) -> None:
    fields = keymap_form((await client.get("/settings")).text)
    fields["keymap.next"] = "K right"

    response = await client.post("/settings/keymap", data=fields, headers=HTMX)

    assert response.status_code == 200
    assert "<html" not in response.text.lower()
    fragment = parse(response.text)
    assert fragment.find("p", id="keymap-saved").text() == "Saved."
    assert keymap_form(response.text)["keymap.next"] == "k ArrowRight"
    api = (await client.get("/api/v1/preferences")).json()
    assert api["keymap"]["next"] == ["k", "ArrowRight"]
    assert api["keymap"]["previous"] == ["a", "ArrowLeft"]


async def test_a_key_two_actions_share_is_refused_beside_the_field_naming_both(
    client: httpx.AsyncClient,
) -> None:
    fields = keymap_form((await client.get("/settings")).text)
    fields["keymap.next"] = "x"  # reject's key

    response = await client.post("/settings/keymap", data=fields, headers=HTMX)

    assert response.status_code == 422
    fragment = parse(response.text)
    error = fragment.find("p", id="pref-keymap-next-error")
    assert "Next image" in error.text() and "Reject suggestion" in error.text()
    field = fragment.find("input", id="pref-keymap-next")
    assert field.attrs["value"] == "x"  # what was typed is kept
    assert field.attrs["aria-invalid"] == "true"
    assert "pref-keymap-next-error" in field.attrs["aria-describedby"]
    api = (await client.get("/api/v1/preferences")).json()
    assert api["keymap"]["next"] == ["d", "ArrowRight"]


async def test_a_key_the_browser_keeps_or_a_bad_key_is_refused(
    client: httpx.AsyncClient,
) -> None:
    fields = keymap_form((await client.get("/settings")).text)

    taken = await client.post("/settings/keymap", data=fields | {"keymap.save": "Ctrl+w"})
    unknown = await client.post("/settings/keymap", data=fields | {"keymap.fit": "Hyper+q"})

    assert taken.status_code == 422
    assert "closes the tab" in parse(taken.text).find("p", id="pref-keymap-save-error").text()
    assert unknown.status_code == 422
    assert "Hyper" in parse(unknown.text).find("p", id="pref-keymap-fit-error").text()


async def test_ratios_not_adding_up_are_refused_with_the_typed_values_kept(
    client: httpx.AsyncClient,
) -> None:
    typed = {"split_ratios.train": "0.7", "split_ratios.val": "0.2", "split_ratios.test": "0.2"}

    refused = await client.post("/settings/splits", data=typed, headers=HTMX)
    saved = await client.post(
        "/settings/splits", data=typed | {"split_ratios.test": "0.1"}, headers=HTMX
    )

    assert refused.status_code == 422
    fragment = parse(refused.text)
    assert "add up to 1" in fragment.find("p", id="splits-error").text()
    assert fragment.find("input", id="pref-split_ratios-test").attrs["value"] == "0.2"
    assert saved.status_code == 200
    assert parse(saved.text).find("p", id="splits-saved")
    ratios = (await client.get("/api/v1/preferences")).json()["split_ratios"]
    assert ratios == {"train": 0.7, "val": 0.2, "test": 0.1}


async def test_a_threshold_out_of_range_is_refused_beside_its_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/settings/autolabel", data={"autolabel.conf": "1.5", "autolabel.iou": "0.5"}
    )

    assert response.status_code == 422
    page = parse(response.text)
    assert "between 0 and 1" in page.find("p", id="pref-autolabel-conf-error").text()
    assert page.find("input", id="pref-autolabel-conf").attrs["value"] == "1.5"


# --- YAML ------------------------------------------------------------------------------------


async def test_export_then_import_gives_the_same_preferences(client: httpx.AsyncClient) -> None:
    changed = {
        "keymap": {"next": ["k"], "previous": ["j", "ArrowLeft"], "help": ["F1"]},
        "split_ratios": {"train": 0.6, "val": 0.3, "test": 0.1},
        "autolabel": {"conf": 0.4, "iou": 0.55},
        "thumbnail_size": "large",
    }
    assert (await client.put("/api/v1/preferences", json=changed)).status_code == 200
    before = (await client.get("/api/v1/preferences")).json()
    exported = await client.get("/settings/export")
    assert exported.headers["content-type"].startswith("application/yaml")
    assert "attachment" in exported.headers["content-disposition"]
    assert yaml.safe_load(exported.text) == before

    assert (await client.delete("/api/v1/preferences")).json()["thumbnail_size"] == "medium"
    imported = await client.post(
        "/settings/import", files={"file": ("prefs.yaml", exported.content, "application/yaml")}
    )

    assert imported.status_code == 303
    assert imported.headers["location"] == "/settings?done=imported"
    assert (await client.get("/api/v1/preferences")).json() == before
    page = parse((await client.get("/settings?done=imported")).text)
    assert page.find("p", class_="settings-notice").text() == "The file was imported."


async def test_a_bad_yaml_file_is_refused_whole_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/api/v1/preferences", json={"thumbnail_size": "small"})
    before = (await client.get("/api/v1/preferences")).json()
    bad_files = {
        "unknown name": "thumbnail_size: large\ncolour_scheme: dark\n",
        "wrong type": "thumbnail_size: large\nsplit_ratios: [0.8, 0.1, 0.1]\n",
        "conflict": "thumbnail_size: large\nkeymap:\n  next: [a]\n",
        "not yaml": "thumbnail_size: [large\n",
        "not a mapping": "- large\n",
    }
    for what, text in bad_files.items():
        response = await client.post(
            "/settings/import",
            files={"file": ("prefs.yaml", text.encode(), "application/yaml")},
            headers=HTMX,
        )
        assert response.status_code == 422, what
        error = parse(response.text).find("p", id="pref-file-error").text()
        assert error, what
        assert (await client.get("/api/v1/preferences")).json() == before, what
    conflict = await client.put(
        "/api/v1/preferences/yaml",
        content=bad_files["conflict"].encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert conflict.status_code == 422
    assert "Previous image" in conflict.json()["detail"]
    assert "Next image" in conflict.json()["detail"]
    assert (await client.get("/api/v1/preferences")).json() == before


async def test_the_yaml_api_round_trips(client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/preferences", json={"autolabel": {"conf": 0.33}})
    text = (await client.get("/api/v1/preferences/yaml")).text
    await client.delete("/api/v1/preferences")

    response = await client.put(
        "/api/v1/preferences/yaml",
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )

    assert response.status_code == 200
    assert response.json()["autolabel"] == {"conf": 0.33, "iou": 0.7}


async def test_the_json_api_refuses_an_unknown_action_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(
        "/api/v1/preferences",
        json={"thumbnail_size": "large", "keymap": {"teleport": ["t"]}},
    )

    assert response.status_code == 422
    assert "teleport" in response.json()["detail"]
    assert (await client.get("/api/v1/preferences")).json()["thumbnail_size"] == "medium"


async def test_reset_puts_every_preference_back(client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/preferences", json={"thumbnail_size": "large"})

    response = await client.post("/settings/reset", headers=HTMX)

    assert response.headers["hx-redirect"] == "/settings?done=reset"
    assert (await client.get("/api/v1/preferences")).json()["thumbnail_size"] == "medium"


# --- where the preferences reach ---------------------------------------------------------------


async def test_a_new_project_gets_the_default_ratios_from_the_form_and_the_api(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ratios = {"train": 0.7, "val": 0.2, "test": 0.1}
    await client.put("/api/v1/preferences", json={"split_ratios": ratios})

    index = parse((await client.get("/")).text)
    by_form = await client.post("/projects", data={"name": "formed", "classes": "cat"})
    by_api = await client.post("/api/v1/projects", json={"name": "apied", "classes": ["cat"]})
    own = await client.post(
        "/api/v1/projects",
        json={"name": "own", "split_ratios": {"train": 0.5, "val": 0.5, "test": 0}},
    )

    form = index.find("form", id="create-project")
    assert [form.find("input", name=s).attrs["value"] for s in ratios] == ["0.7", "0.2", "0.1"]
    assert by_form.status_code == 303 and by_api.status_code == 201 and own.status_code == 201
    stores = stores_of(app)
    assert await stores.dataset.get_split_ratios("formed") == ratios
    assert await stores.dataset.get_split_ratios("apied") == ratios
    assert await stores.dataset.get_split_ratios("own") == {"train": 0.5, "val": 0.5, "test": 0}


async def test_the_new_project_form_refuses_ratios_not_adding_up_and_makes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/projects",
        data={"name": "odd", "classes": "cat", "train": "0.9", "val": "0.2", "test": "0.1"},
        headers=HTMX,
    )

    assert response.status_code == 422
    form = parse(response.text)
    assert "add up to 1" in form.find("p", id="create-error").text()
    assert form.find("input", id="project-val").attrs["value"] == "0.2"
    assert await stores_of(app).dataset.get("odd") is None


async def test_the_thumbnail_size_and_the_annotators_keys_reach_the_grid(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("pets", ["cat"])
    await stores.image.save("pets", "train", "p.png", make_image(seed=1))
    default = parse((await client.get("/projects/pets/images")).text)
    await client.post("/settings/grid", data={"thumbnail_size": "large"}, headers=HTMX)
    await client.put("/api/v1/preferences", json={"keymap": {"next": ["k"]}})

    large = parse((await client.get("/projects/pets/images")).text)

    assert "--tile-size: 10.5rem" in default.find("div", id="grid-area").attrs["style"]
    area = large.find("div", id="grid-area")
    assert "--tile-size: 15rem" in area.attrs["style"]
    assert area.attrs["data-thumbnail-size"] == "large"
    assert area.find("ul", id="tiles")
    hint = area.find("p", class_="grid-annotate").find("span", class_="hint").text()
    assert hint.startswith("A / K go through")


async def test_the_thresholds_reach_the_autolabel_form(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stores_of(app).dataset.create("pets", ["cat"])
    await client.put("/api/v1/preferences", json={"autolabel": {"conf": 0.42, "iou": 0.6}})

    page = parse((await client.get("/projects/pets/autolabel")).text)

    assert page.find("input", id="autolabel-conf").attrs["value"] == "0.42"
    assert page.find("input", id="autolabel-iou").attrs["value"] == "0.6"


async def test_the_annotator_gets_the_keymap_and_shows_the_bound_keys(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("pets", ["cat", "dog"])
    await stores.image.save("pets", "train", "a.png", make_image(seed=1))
    await stores.image.save("pets", "train", "b.png", make_image(seed=2))
    await client.put("/api/v1/preferences", json={"keymap": {"next": ["k"], "class2": ["g"]}})

    page = parse((await client.get("/projects/pets/annotate/a.png")).text)

    data = json.loads(page.find("script", id="annotator-data").text())
    rows = {row["action"]: row for row in data["keymap"]}
    assert rows["next"]["keys"] == ["k"]
    assert rows["previous"]["keys"] == ["a", "ArrowLeft"]
    assert rows["class2"]["labels"] == ["G"]
    keys = [b.find("kbd").text() for b in page.find("ol", id="ann-classes").find_all("button")]
    assert keys == ["1", "G"]
    next_link = page.find_all("a", id="ann-next") or page.find_all("span", id="ann-next")
    assert "(K)" in next_link[0].attrs["title"]


# --- who may change them (accounts on) ---------------------------------------------------------


async def test_with_accounts_only_an_admin_changes_preferences_and_everyone_reads_them(
    as_role: dict[str, httpx.AsyncClient],
) -> None:
    reviewer, admin, viewer = as_role["reviewer"], as_role["admin"], as_role["viewer"]

    refused = await reviewer.put("/api/v1/preferences", json={"thumbnail_size": "large"})
    form = await reviewer.post("/settings/grid", data={"thumbnail_size": "large"})
    page = parse((await reviewer.get("/settings")).text)
    exported = await viewer.get("/settings/export")
    allowed = await admin.put("/api/v1/preferences", json={"thumbnail_size": "large"})

    assert refused.status_code == 403
    assert "needs the admin role" in refused.json()["detail"]
    assert form.status_code == 403
    assert page.find("p", class_="settings-read-only")
    assert "disabled" in page.find("form", id="grid-form").find("button").attrs
    assert exported.status_code == 200
    assert allowed.status_code == 200
    assert (await viewer.get("/api/v1/preferences")).json()["thumbnail_size"] == "large"
