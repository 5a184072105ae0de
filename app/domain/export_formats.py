"""The export formats, pure: option checks, CVAT "YOLO 1.1" text files, COCO JSON objects.

Boxes come in as the stores keep them: a class position and the normalised centre and size in
the upright image (``width``/``height`` of an image are its upright size).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.domain.errors import Invalid
from app.domain.models import SPLITS

ULTRALYTICS = "ultralytics"
YOLO11 = "yolo11"
COCO = "coco"
FORMATS: tuple[str, ...] = (ULTRALYTICS, YOLO11, COCO)
FORMAT_TITLES: dict[str, str] = {
    ULTRALYTICS: "Ultralytics YOLO",
    YOLO11: "YOLO 1.1 (CVAT, Darknet)",
    COCO: "COCO JSON",
}
# CVAT/Darknet call the validation subset "valid".
YOLO11_SUBSETS: dict[str, str] = {"train": "train", "val": "valid", "test": "test"}


def validate_export_options(
    splits: Iterable[str] | None, format: str | None
) -> tuple[tuple[str, ...], str]:
    """The splits (in ``SPLITS`` order, no repeats) and format of an export; ``None`` means the
    default (every split, Ultralytics). ``Invalid`` for an unknown format or split, or none."""
    chosen_format = ULTRALYTICS if format is None else format
    if chosen_format not in FORMATS:
        raise Invalid(
            f"There is no export format {chosen_format!r}; choose one of {', '.join(FORMATS)}."
        )
    if splits is None:
        return SPLITS, chosen_format
    wanted = list(splits)
    unknown = [s for s in wanted if s not in SPLITS]
    if unknown:
        raise Invalid(f"There is no split {unknown[0]!r}; the splits are {', '.join(SPLITS)}.")
    if not wanted:
        raise Invalid("Choose at least one split to export.")
    return tuple(s for s in SPLITS if s in wanted), chosen_format


def export_zip_name(project: str, format: str) -> str:
    """``<project>.zip`` for Ultralytics, ``<project>-<format>.zip`` for the others."""
    return f"{project}.zip" if format == ULTRALYTICS else f"{project}-{format}.zip"


def ultralytics_yaml_dict(data_yaml: dict[str, Any], splits: Sequence[str]) -> dict[str, Any]:
    """The ``data.yaml`` dict with only the exported splits' keys."""
    return {k: v for k, v in data_yaml.items() if k not in SPLITS or k in splits}


# --- YOLO 1.1 (CVAT / Darknet) -----------------------------------------------------------------


def yolo11_folder(split: str) -> str:
    """``obj_train_data``, ``obj_valid_data``, ``obj_test_data``: images and labels side by side."""
    return f"obj_{YOLO11_SUBSETS[split]}_data"


def yolo11_list_name(split: str) -> str:
    """``train.txt``, ``valid.txt``, ``test.txt``: the image list of a split."""
    return f"{YOLO11_SUBSETS[split]}.txt"


def yolo11_list_line(split: str, filename: str) -> str:
    """One line of a list file, as CVAT writes it (relative to Darknet's working folder)."""
    return f"data/{yolo11_folder(split)}/{filename}\n"


def obj_names_text(classes: Sequence[str]) -> str:
    """``obj.names``: one class per line, in index order."""
    return "".join(f"{name}\n" for name in classes)


def obj_data_text(class_count: int, splits: Sequence[str]) -> str:
    """``obj.data``: the class count, a list file per exported split, names and backup."""
    lines = [f"classes = {class_count}"]
    lines += [f"{YOLO11_SUBSETS[s]} = data/{yolo11_list_name(s)}" for s in splits]
    lines += ["names = data/obj.names", "backup = backup/"]
    return "".join(f"{line}\n" for line in lines)


# --- COCO -------------------------------------------------------------------------------------


def coco_annotation_name(split: str) -> str:
    """``annotations/instances_<split>.json``."""
    return f"annotations/instances_{split}.json"


def coco_categories(classes: Sequence[str]) -> list[dict[str, Any]]:
    """Categories with ids 1..N in class order."""
    return [{"id": i, "name": name, "supercategory": ""} for i, name in enumerate(classes, start=1)]


def coco_image(image_id: int, file_name: str, width: int, height: int) -> dict[str, Any]:
    """One entry of ``images``."""
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


def coco_annotation(
    annotation_id: int,
    image_id: int,
    box: tuple[int, float, float, float, float],
    width: int,
    height: int,
) -> dict[str, Any]:
    """One entry of ``annotations``: ``box`` is (class position, x, y, w, h) normalised; the
    bbox is ``[x_min, y_min, w, h]`` in pixels of the upright image."""
    position, x, y, w, h = box
    pixel_w, pixel_h = w * width, h * height
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": position + 1,
        "bbox": [x * width - pixel_w / 2, y * height - pixel_h / 2, pixel_w, pixel_h],
        "area": pixel_w * pixel_h,
        "iscrowd": 0,
    }


def coco_head(classes: Sequence[str]) -> dict[str, Any]:
    """Everything of a COCO file but its ``images`` and ``annotations``."""
    return {
        "info": {"description": "Exported by ydc", "version": "1.0"},
        "licenses": [],
        "categories": coco_categories(classes),
    }
