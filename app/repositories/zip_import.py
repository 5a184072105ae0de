"""Read an Ultralytics-layout zip into an import plan, without extracting anything.

Members are only ever read by name through ``zipfile``; a member whose path is absolute or climbs
out with ``..`` makes the whole archive refused.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from app.domain.errors import Invalid
from app.domain.models import Annotation
from app.domain.sync_rules import class_names
from app.domain.validation import IMAGE_SUFFIXES, unsafe_member_path
from app.domain.yolo import parse_label_text

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
MAX_YAML_BYTES = 1024 * 1024
MAX_LABEL_BYTES = 10 * 1024 * 1024


@dataclass
class PlannedImage:
    member: str
    split: str
    filename: str
    annotations: list[Annotation] | None  # None: no label file (unlabelled)
    label_member: str | None


@dataclass
class ImportPlan:
    classes: list[str]
    images: list[PlannedImage]


def _check_member(name: str) -> PurePosixPath:
    if unsafe_member_path(name):
        raise Invalid(f"The zip contains a path that leaves the archive: {name!r}.")
    return PurePosixPath(name.replace("\\", "/"))


def read_yolo_zip(zip_path: Path) -> ImportPlan:
    """Plan the import of a zip holding ``data.yaml`` + ``images/<split>/`` + ``labels/<split>/``
    (or ``<split>/images`` + ``<split>/labels``, as Roboflow writes them)."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise Invalid("The file is not a zip archive, or it is damaged.") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        paths = {info.filename: _check_member(info.filename) for info in infos}
        yamls = sorted(
            (p for p in paths.values() if p.suffix in (".yaml", ".yml")),
            key=lambda p: (len(p.parts), p.name != "data.yaml"),
        )
        if not yamls:
            raise Invalid("The zip has no data.yaml, so ydc cannot tell the class names.")
        yaml_path = yamls[0]
        root = yaml_path.parent
        info = archive.getinfo(next(k for k, v in paths.items() if v == yaml_path))
        if info.file_size > MAX_YAML_BYTES:
            raise Invalid(f"{yaml_path} is too large to be a dataset description.")
        try:
            raw = yaml.safe_load(archive.read(info))
        except yaml.YAMLError as error:
            raise Invalid(f"{yaml_path} is not valid YAML: {error}") from None
        classes = class_names(raw, where=str(yaml_path))

        labels: dict[tuple[str, str], str] = {}
        images: list[tuple[str, str, PurePosixPath]] = []
        for member, path in paths.items():
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            parts = rel.parts
            if len(parts) < 3:
                continue
            if parts[0] in ("images", "labels") and parts[1] in SPLIT_NAMES:
                kind, split = parts[0], SPLIT_NAMES[parts[1]]
            elif parts[1] in ("images", "labels") and parts[0] in SPLIT_NAMES:
                kind, split = parts[1], SPLIT_NAMES[parts[0]]
            else:
                continue
            if kind == "images" and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append((member, split, path))
            elif kind == "labels" and path.suffix == ".txt":
                labels[(split, path.stem)] = member

        planned: list[PlannedImage] = []
        for member, split, path in sorted(images, key=lambda item: item[0]):
            label_member = labels.get((split, path.stem))
            annotations = None
            if label_member is not None:
                if archive.getinfo(label_member).file_size > MAX_LABEL_BYTES:
                    raise Invalid(f"{label_member} is too large to be a label file.")
                try:
                    text = archive.read(label_member).decode("utf-8")
                except UnicodeDecodeError:
                    raise Invalid(f"{label_member} is not UTF-8 text.") from None
                annotations = parse_label_text(text, where=label_member)
                for ann in annotations:
                    if not 0 <= ann.class_id < len(classes):
                        raise Invalid(
                            f"{label_member}: class {ann.class_id} is out of range "
                            f"(data.yaml names {len(classes)} classes)."
                        )
            planned.append(PlannedImage(member, split, path.name, annotations, label_member))
    return ImportPlan(classes, planned)
