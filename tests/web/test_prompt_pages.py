"""The prompts page: the editor (saved, mirrored to ``prompts.yaml``, refusals keeping what was
typed), what YOLO-World needs when its files are missing (never a stack trace), the uploads that
provide them, the auto-label run it allows, and the JSON twins."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI

from app.config import Settings
from app.domain.stores import Stores
from app.main import create_app
from app.services.prompts import CLIP_FILE, FOLDER, WORLD_FILE
from tests.conftest import make_image
from tests.web.htmltree import parse

PT = b"PK\x03\x04 a zip archive, as torch.save writes"


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


@pytest.fixture
async def pets(app: FastAPI) -> str:
    stores = stores_of(app)
    await stores.dataset.create("pets", ["cat", "dog", "bird"])
    await stores.image.save("pets", "train", "p.png", make_image(seed=1))
    return "pets"


async def test_without_the_files_the_page_says_exactly_what_to_provide(
    client: httpx.AsyncClient, pets: str, settings: Settings
) -> None:
    response = await client.get("/projects/pets/prompts")

    assert response.status_code == 200
    page = parse(response.text)
    weights = page.find("li", id="requirement-weights")
    encoder = page.find("li", id="requirement-text_encoder")
    assert "missing" in weights.attrs["class"] and "missing" in encoder.attrs["class"]
    assert "yolov8s-worldv2.pt" in weights.text() and "YDC_WORLD_WEIGHTS" in weights.text()
    assert str(settings.data_dir / FOLDER / WORLD_FILE) in weights.text()
    assert "ViT-B-32.pt" in encoder.text() and "YDC_CLIP_WEIGHTS" in encoder.text()
    assert "ready" in page.find("li", id="requirement-package").attrs["class"]
    assert "Traceback" not in response.text
    run = page.find("section", id="prompt-run")
    assert "disabled" in run.find("button").attrs


async def test_a_run_without_the_files_is_refused_with_what_to_provide(
    client: httpx.AsyncClient, pets: str
) -> None:
    await client.put("/api/v1/projects/pets/prompts", json={"prompts": {"0": ["a cat"]}})

    form = await client.post("/projects/pets/prompts/autolabel", data={"selection": "all"})
    api = await client.post("/api/v1/projects/pets/autolabel/prompts", json={})

    assert form.status_code == 422
    message = parse(form.text).find("p", id="prompt-run-error").text()
    assert "YOLO-World is not ready" in message and "YOLO-World weights" in message
    assert api.status_code == 422 and "CLIP ViT-B/32" in api.text
    assert (await client.get("/api/v1/tasks")).json() == []


async def test_saving_the_editor_keeps_one_prompt_a_line_and_mirrors_prompts_yaml(
    client: httpx.AsyncClient, pets: str, projects_dir: Path
) -> None:
    response = await client.post(
        "/projects/pets/prompts",
        data={"prompts-0": "a tabby cat\n\n  kitten  \n", "prompts-1": "", "prompts-2": "owl"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert ">a tabby cat\nkitten</textarea>" in response.text
    api = (await client.get("/api/v1/projects/pets/prompts")).json()
    assert [c["prompts"] for c in api["classes"]] == [["a tabby cat", "kitten"], [], ["owl"]]
    mirror = yaml.safe_load((projects_dir / "pets" / "prompts.yaml").read_text())
    assert mirror == {0: ["a tabby cat", "kitten"], 2: ["owl"]}


async def test_class_names_fill_the_classes_left_without_prompts(
    client: httpx.AsyncClient, pets: str
) -> None:
    await client.post("/projects/pets/prompts", data={"prompts-0": "kitten", "fill": "names"})

    api = (await client.get("/api/v1/projects/pets/prompts")).json()
    assert [c["prompts"] for c in api["classes"]] == [["kitten"], ["dog"], ["bird"]]


async def test_a_prompt_given_to_two_classes_is_refused_and_what_was_typed_stays(
    client: httpx.AsyncClient, pets: str
) -> None:
    response = await client.post(
        "/projects/pets/prompts",
        data={"prompts-0": "pet\ncat", "prompts-1": "Pet"},
        headers={"HX-Request": "true"},
    )
    api = await client.put(
        "/api/v1/projects/pets/prompts", json={"prompts": {"0": ["pet"], "1": ["pet"]}}
    )

    assert response.status_code == 422
    editor = parse(response.text)
    assert "given to both 'cat' and 'dog'" in editor.find("p", id="prompt-error").text()
    assert editor.find("textarea", id="prompts-1").text() == "Pet"
    assert api.status_code == 422
    saved = (await client.get("/api/v1/projects/pets/prompts")).json()
    assert [c["prompts"] for c in saved["classes"]] == [[], [], []]


async def test_uploading_both_files_makes_yolo_world_ready_and_a_run_queues_a_task(
    app: FastAPI, client: httpx.AsyncClient, pets: str, settings: Settings
) -> None:
    await client.put("/api/v1/projects/pets/prompts", json={"prompts": {"1": ["a dog"]}})

    weights = await client.post(
        "/projects/pets/prompts/files/weights",
        files={"file": ("yolov8s-worldv2.pt", PT, "application/octet-stream")},
    )
    encoder = await client.post(
        "/api/v1/yolo-world/text_encoder",
        files={"file": ("ViT-B-32.pt", PT, "application/octet-stream")},
    )
    run = await client.post(
        "/projects/pets/prompts/autolabel", data={"selection": "all", "conf": "0.3"}
    )

    assert weights.status_code == 303
    assert encoder.status_code == 200 and encoder.json()["ready"] is True
    assert (settings.data_dir / FOLDER / WORLD_FILE).read_bytes() == PT
    assert (settings.data_dir / FOLDER / CLIP_FILE).read_bytes() == PT
    assert run.status_code == 303
    task = await stores_of(app).task.get(int(run.headers["location"].rsplit("/", 1)[1]))
    assert task.kind == "autolabel" and task.dataset == "pets"
    assert task.params["prompts"] is True and task.params["conf"] == 0.3
    assert task.params["world_weights"] == str(settings.data_dir / FOLDER / WORLD_FILE)
    page = parse((await client.get("/projects/pets/prompts")).text)
    assert "disabled" not in page.find("section", id="prompt-run").find("button").attrs


async def test_an_upload_that_is_no_weights_file_is_refused_and_nothing_is_kept(
    client: httpx.AsyncClient, pets: str, settings: Settings
) -> None:
    named = await client.post(
        "/projects/pets/prompts/files/weights",
        files={"file": ("notes.txt", PT, "text/plain")},
    )
    fake = await client.post(
        "/api/v1/yolo-world/weights",
        files={"file": ("world.pt", b"<html>a login page</html>", "application/octet-stream")},
    )
    unknown = await client.post(
        "/api/v1/yolo-world/tokenizer", files={"file": ("t.pt", PT, "application/octet-stream")}
    )

    assert named.status_code == 422
    assert "not a .pt file" in parse(named.text).find("p", id="upload-error-weights").text()
    assert fake.status_code == 422 and "not a PyTorch weights file" in fake.text
    assert unknown.status_code == 422
    folder = settings.data_dir / FOLDER
    assert not folder.exists() or list(folder.iterdir()) == []


async def test_files_named_by_the_settings_are_looked_for_there(
    settings: Settings, tmp_path: Path
) -> None:
    weights, clip = tmp_path / "w.pt", tmp_path / "c.pt"
    weights.write_bytes(PT)
    configured = settings.model_copy(update={"world_weights": weights, "clip_weights": clip})
    app = create_app(configured)
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            status = (await http.get("/api/v1/yolo-world")).json()

    found = {r["key"]: r for r in status["requirements"]}
    assert status["ready"] is False
    assert found["weights"]["ready"] is True and str(weights) in found["weights"]["where"]
    assert found["text_encoder"]["ready"] is False
    assert "YDC_CLIP_WEIGHTS" in found["text_encoder"]["where"]
