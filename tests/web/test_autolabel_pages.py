"""The auto-label form (its page, the fragment the review page loads) and its refusals; a
post queues an ``autolabel`` task and goes on to its page."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from app.domain.stores import Stores
from tests.conftest import make_image
from tests.web.htmltree import parse


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def pets(stores: Stores, tmp_path: Path, *, models: int) -> None:
    """A project with two unlabelled images and ``models`` registered models (the last one
    made active)."""
    await stores.dataset.create("pets", ["cat", "dog"])
    for seed in range(2):
        await stores.image.save("pets", "train", f"p{seed}.png", make_image(seed=seed))
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really weights")
    for i in range(models):
        await stores.model.save(f"pets-{i}", weights, "yolo11n.yaml", "pets", 1, {})
    if models:
        await stores.model.set_active(f"pets-{models - 1}")


async def test_the_form_lists_the_projects_models_the_active_one_first(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await pets(stores_of(app), tmp_path, models=2)

    page = parse((await client.get("/projects/pets/autolabel")).text)
    fragment = await client.get("/projects/pets/autolabel", headers={"HX-Request": "true"})
    review = parse((await client.get("/projects/pets/review")).text)

    form = page.find("form", class_="autolabel-form")
    assert form.attrs["action"] == "/projects/pets/autolabel"
    options = page.find("select", id="autolabel-model").find_all("option")
    assert [o.attrs["value"] for o in options] == ["pets-1", "pets-0"]
    assert "selected" in options[0].attrs
    selections = [
        o.attrs["value"] for o in page.find("select", id="autolabel-selection").find_all("option")
    ]
    assert selections[0] == "unlabelled" and "split:val" in selections and "all" in selections
    assert "<html" not in fragment.text.lower()
    assert fragment.headers["vary"] == "HX-Request"
    assert parse(fragment.text).find("section", id="autolabel") is not None
    assert review.find("a", id="autolabel-link").attrs["href"] == "/projects/pets/autolabel"


async def test_without_a_model_auto_labelling_is_refused_with_a_reason(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await pets(stores_of(app), tmp_path, models=0)

    response = await client.post("/projects/pets/autolabel", data={"selection": "unlabelled"})
    api = await client.post("/api/v1/projects/pets/autolabel", json={})

    assert response.status_code == 422
    error = parse(response.text).find("p", id="autolabel-error")
    assert "no active model" in error.text()
    assert api.status_code == 422
    assert "no active model" in api.text
    assert await stores_of(app).task.list() == []


async def test_posting_the_form_queues_the_task_and_goes_to_its_page(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await pets(stores_of(app), tmp_path, models=2)

    response = await client.post(
        "/projects/pets/autolabel",
        data={"model": "pets-0", "selection": "split:train", "conf": "0.4"},
    )
    nothing = await client.post("/api/v1/projects/pets/autolabel", json={"selection": "split:val"})
    unknown = await client.post("/api/v1/projects/pets/autolabel", json={"model": "nope"})

    assert response.status_code == 303
    tasks = await stores_of(app).task.list()
    assert len(tasks) == 1
    task = tasks[0]
    assert response.headers["location"] == f"/tasks/{task.id}"
    assert task.kind == "autolabel" and task.dataset == "pets"
    assert task.params == {
        "model": "pets-0",
        "selection": "split:train",
        "conf": 0.4,
        "iou": 0.7,
        "imgsz": 640,
    }
    assert nothing.status_code == 422 and "no images" in nothing.text
    assert unknown.status_code == 404


async def test_the_grids_filter_can_be_auto_labelled_as_it_stands(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await pets(stores_of(app), tmp_path, models=1)

    grid = parse((await client.get("/projects/pets/images?q=p1")).text)
    link = grid.find("a", id="grid-autolabel").attrs["href"]
    form = parse((await client.get(link)).text)
    chosen = form.find("select", id="autolabel-selection").find_all("option")[0]
    queued = await client.post(
        "/projects/pets/autolabel", data={"selection": chosen.attrs["value"], "conf": "0.3"}
    )

    assert link == "/projects/pets/autolabel?selection=filter%3Aq%3Dp1"
    assert chosen.attrs["value"] == "filter:q=p1" and "selected" in chosen.attrs
    assert queued.status_code == 303
    task = await stores_of(app).task.get(int(queued.headers["location"].rsplit("/", 1)[1]))
    assert task.params["selection"] == "filter:q=p1"
    unfiltered = parse((await client.get("/projects/pets/images")).text)
    assert not unfiltered.find_all("a", id="grid-autolabel")
