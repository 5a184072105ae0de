"""YOLO-World's wiring, with only the text encoder replaced by a fixed one (CLIP's weights cannot
be had offline): the project's prompts are what the model is set to, each prompt's detections
become pending suggestions of its class (source ``prompt``), a class without prompts gets none,
and a second run replaces the first run's suggestions.

The weights are a real YOLO-World model built from Ultralytics' ``yolov8n-worldv2.yaml``, its
class scores biased up so that it fires on any image (untrained weights find nothing)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.domain.errors import Invalid
from app.domain.evaluation import iou
from app.domain.stores import Stores
from app.services import prompts as prompt_service
from app.tasks import yoloworld
from app.tasks.autolabel import autolabel_project
from app.tasks.context import TaskContext
from app.tasks.training import prepare_ultralytics

CLASSES = ["cat", "dog", "bird"]
PROMPTS = {0: ["cat", "kitten"], 1: ["dog"]}  # bird has none


class FixedTextEncoder:
    """Stands in for CLIP's text model: a fixed unit vector per prompt, and a record of the
    prompts it was asked to encode."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def tokenize(self, texts: list[str]) -> Any:
        import torch

        self.seen += list(texts)
        return torch.arange(len(self.seen) - len(texts), len(self.seen))

    def encode_text(self, tokens: Any, dtype: Any = None) -> Any:
        import torch

        table = torch.nn.functional.normalize(
            torch.randn(64, 512, generator=torch.Generator().manual_seed(7)), dim=-1
        )
        return table[tokens].to(dtype or torch.float32)


def build_world_weights(path: Path, data_dir: Path) -> None:
    """A YOLO-World checkpoint whose class scores are all high (bias +6 before the sigmoid)."""
    prepare_ultralytics(data_dir)
    import torch
    from ultralytics import YOLO

    model = YOLO("yolov8n-worldv2.yaml")
    with torch.no_grad():
        for head in model.model.model[-1].cv4:
            head.bias.fill_(6.0)
    model.save(str(path))


@pytest.fixture
async def world_settings(settings: Settings, tmp_path: Path) -> Settings:
    weights, clip = tmp_path / "world.pt", tmp_path / "clip.pt"
    await asyncio.to_thread(build_world_weights, weights, settings.data_dir)
    clip.write_bytes(b"PK\x03\x04 not read: the text encoder is replaced")
    return settings.model_copy(update={"world_weights": weights, "clip_weights": clip})


@pytest.fixture
def encoder(monkeypatch: pytest.MonkeyPatch) -> FixedTextEncoder:
    fixed = FixedTextEncoder()
    monkeypatch.setattr(yoloworld, "text_encoder", lambda path, device: fixed)
    return fixed


async def run_claimed(stores: Stores, settings: Settings) -> dict[str, Any]:
    claimed = await stores.task.claim("test-worker")
    assert claimed is not None and claimed.params["prompts"] is True
    async with TaskContext(claimed, "test-worker", stores.task, settings.task_heartbeat_s) as ctx:
        return await autolabel_project(ctx, stores)


async def test_each_prompts_detections_become_suggestions_of_its_class(
    stores: Stores, world_settings: Settings, encoder: FixedTextEncoder
) -> None:
    await stores.dataset.create("pets", CLASSES)
    await prompt_service.save_prompts(stores, "pets", PROMPTS)
    rng = np.random.default_rng(3)
    names = []
    for i in range(3):
        image = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
        names.append((await stores.image.save("pets", "train", f"p{i}.jpg", image)).filename)

    await prompt_service.start_prompt_autolabel(
        stores, world_settings, "pets", {"conf": 0.25, "imgsz": 160}
    )
    result = await run_claimed(stores, world_settings)

    assert encoder.seen == ["cat", "kitten", "dog"]  # the prompts, in class order
    assert result["prompts"] == ["cat", "kitten", "dog"]
    assert result["model"] is None and result["images"] == 3
    assert result["suggestions_added"] > 0
    found = {name: await stores.label.list_suggestions("pets", name) for name in names}
    suggestions = [s for per_image in found.values() for s in per_image]
    assert len(suggestions) == result["suggestions_added"]
    assert {s.source for s in suggestions} == {"prompt"}
    assert {s.model for s in suggestions} == {None}
    assert {s.class_id for s in suggestions} <= {0, 1}  # kitten went to cat; bird has no prompt
    assert all(s.confidence is not None and s.confidence >= 0.25 for s in suggestions)
    for per_image in found.values():  # cat and kitten finding one object make one suggestion
        for i, a in enumerate(per_image):
            for b in per_image[i + 1 :]:
                boxes = (a.x, a.y, a.width, a.height), (b.x, b.y, b.width, b.height)
                assert a.class_id != b.class_id or iou(*boxes) < 0.7

    await prompt_service.start_prompt_autolabel(
        stores, world_settings, "pets", {"conf": 0.25, "imgsz": 160}
    )
    again = await run_claimed(stores, world_settings)

    assert again["suggestions_replaced"] == result["suggestions_added"]
    after = [s for name in names for s in await stores.label.list_suggestions("pets", name)]
    assert len(after) == again["suggestions_added"]


async def test_weights_of_a_plain_yolo_model_are_refused_with_the_reason(
    settings: Settings, tmp_path: Path, encoder: FixedTextEncoder
) -> None:
    def plain(path: Path) -> None:
        prepare_ultralytics(settings.data_dir)
        from ultralytics import YOLO

        YOLO("yolo11n.yaml").save(str(path))

    weights, clip = tmp_path / "plain.pt", tmp_path / "clip.pt"
    await asyncio.to_thread(plain, weights)
    clip.write_bytes(b"PK\x03\x04")

    with pytest.raises(Invalid, match="not a YOLO-World model"):
        await asyncio.to_thread(yoloworld.load_world, weights, clip, ["cat"])
    assert encoder.seen == []


def test_after_ultralytics_is_loaded_pillow_still_says_not_an_image(settings: Settings) -> None:
    # Ultralytics patches PIL.Image.open to pip-install pi-heif on an unknown file: offline a
    # network attempt and an ImportError, which the image checks of this process would meet.
    import io

    from PIL import Image

    prepare_ultralytics(settings.data_dir)
    from ultralytics import YOLO  # noqa: F401  (applies its patches)

    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(b"no image at all"))
