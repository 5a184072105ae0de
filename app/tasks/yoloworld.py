"""Loading YOLO-World for the text prompts, from files the user provides: the YOLO-World weights
and the CLIP ViT-B/32 text encoder. Nothing is downloaded: Ultralytics' ``set_classes`` would
fetch CLIP's weights by name, so the encoder is built here from the given file and handed to
the model as its cached text model first.

Runs in a task worker: torch and Ultralytics are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from app.domain.errors import Invalid


def text_encoder(clip_weights: Path, device: Any) -> Any:
    """Ultralytics' CLIP text model, loaded from ``clip_weights`` (a path is never a download)."""
    if importlib.util.find_spec("clip") is None:
        # Ultralytics would pip-install it from GitHub here: refuse instead, offline.
        raise Invalid(
            "The CLIP package is not installed in ydc's environment: run `make install` "
            "(it installs openai-clip) and start again."
        )
    from ultralytics.nn.text_model import CLIP

    return CLIP(str(clip_weights), device)


def load_world(weights: Path, clip_weights: Path, prompts: list[str]) -> Any:
    """A YOLO-World model set to ``prompts`` (model class ``i`` = ``prompts[i]``). ``Invalid``
    for a missing file or weights that are no YOLO-World model."""
    for path, what in ((weights, "YOLO-World weights"), (clip_weights, "CLIP text encoder")):
        if not path.is_file():
            raise Invalid(f"The {what} file {str(path)!r} is missing.")
    if not prompts:
        raise Invalid("No class has a prompt: give at least one class a prompt.")
    from ultralytics import YOLO
    from ultralytics.nn.tasks import WorldModel

    model = YOLO(str(weights))
    world = model.model
    if not isinstance(world, WorldModel):
        raise Invalid(
            f"{weights.name!r} is a {type(world).__name__}, not a YOLO-World model: provide "
            "YOLO-World weights such as yolov8s-worldv2.pt."
        )
    device = next(world.parameters()).device
    # What YOLOWorld.set_classes does, with the text model given rather than fetched by name.
    world.clip_model = text_encoder(clip_weights, device)
    world.set_classes(list(prompts), cache_clip_model=True)
    world.names = list(prompts)
    model.predictor = None
    return model


__all__ = ["load_world", "text_encoder"]
