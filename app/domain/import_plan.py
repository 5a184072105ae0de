"""Which kind of export a source is, and the plan of its import: the class names, and for each
image its split and where its boxes are (a YOLO label file, or pixel boxes from COCO JSON or
Pascal VOC XML).

Pure but for ``read``, the caller's reader of a file by its path in the source (a zip member or
a file under a folder); only the small files (YAML, names, lists, JSON, XML) are read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml

from app.domain import box_formats
from app.domain.errors import Invalid
from app.domain.import_rules import (
    NOT_LABELS,
    Listing,
    Reason,
    class_key,
    dataset_yaml_splits,
    is_image,
    is_other_picture,
    list_file_entries,
    notes_json_names,
    read_darknet_data,
    read_names_file,
    split_of_path,
    split_word,
    yolo_label_candidates,
)
from app.domain.sync_rules import class_names
from app.domain.validation import IMAGE_SUFFIXES

Reader = Callable[[str], bytes]
Edges = tuple[float, float, float, float]

MAX_SMALL_FILE = 1024 * 1024  # a YAML, names or list file
MAX_JSON = 1024 * 1024 * 1024  # a COCO file of a big dataset
MAX_COCO_CANDIDATES = 20
MAX_VOC_PROBES = 20

ULTRALYTICS = "Ultralytics YOLO"
ROBOFLOW = "Roboflow YOLO"
CVAT = "CVAT YOLO 1.1"
LABEL_STUDIO = "Label Studio YOLO"
PLAIN_YOLO = "YOLO folders"
COCO = "COCO JSON"
VOC = "Pascal VOC"

_BOX_REASONS = {
    box_formats.CROWD: Reason.CROWD,
    box_formats.UNKNOWN_IMAGE: Reason.UNKNOWN_IMAGE,
    box_formats.UNKNOWN_CATEGORY: Reason.UNKNOWN_CATEGORY,
    box_formats.MALFORMED_BOX: Reason.MALFORMED,
    box_formats.NO_CLASS_NAME: Reason.NO_CLASS_NAME,
}


@dataclass
class PixelBoxes:
    """An image's boxes in pixels of ``frame`` (the size the source declares, if any)."""

    boxes: list[tuple[int, Edges]]
    frame: tuple[int, int] | None
    annotated: bool  # the source annotated it (no boxes then means "no objects")


@dataclass
class PlannedImage:
    path: str
    split: str | None
    label_path: str | None = None  # a YOLO label file
    pixels: PixelBoxes | None = None  # boxes from COCO / VOC
    where: str = ""  # the file the boxes come from, for the report


@dataclass
class ImportPlan:
    format: str
    classes: list[str]
    images: list[PlannedImage] = field(default_factory=list)
    findings: list[tuple[Reason, str]] = field(default_factory=list)


def plan_import(files: Iterable[str], read: Reader) -> ImportPlan:
    """The plan of a source holding ``files`` (relative POSIX paths). ``Invalid`` when it holds
    no image and no annotations ydc can read."""
    listing = Listing(files)
    cocos = _coco_files(listing, read)
    if cocos:
        plan = _plan_coco(listing, cocos)
    elif (voc := [f for f in listing.files if f.lower().endswith(".xml")]) and _is_voc(read, voc):
        plan = _plan_voc(listing, read, voc)
    else:
        plan = _plan_yolo(listing, read)
    kinds = ", ".join(IMAGE_SUFFIXES)
    plan.findings += [
        (Reason.NOT_IMAGE, f"{path} (ydc stores {kinds})")
        for path in listing.files
        if is_other_picture(path)
    ]
    if not plan.images:
        raise Invalid(
            "No images found: ydc imports .jpg, .jpeg, .png, .bmp, .webp and .tif files, with "
            "YOLO label files, COCO JSON or Pascal VOC XML beside them."
        )
    return plan


def _text(read: Reader, path: str) -> str:
    data = read(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"{path} is not UTF-8 text.") from None


def _yaml(read: Reader, path: str) -> object:
    try:
        return yaml.safe_load(_text(read, path))
    except yaml.YAMLError as error:
        raise Invalid(f"{path} is not valid YAML: {error}") from None


# --- COCO -------------------------------------------------------------------------------------


def _coco_files(listing: Listing, read: Reader) -> list[tuple[str, box_formats.CocoDataset]]:
    candidates = [
        f
        for f in listing.files
        if f.lower().endswith(".json") and PurePosixPath(f).name.casefold() != "notes.json"
    ]
    if len(candidates) > MAX_COCO_CANDIDATES:
        # Per-image JSON (labelme and the like) is not COCO: look only at the usual names.
        candidates = [
            f
            for f in candidates
            if any(word in f.casefold() for word in ("annotation", "instances", "coco"))
        ][:MAX_COCO_CANDIDATES]
    found: list[tuple[str, box_formats.CocoDataset]] = []
    for path in candidates:
        try:
            raw = json.loads(read(path))
        except (ValueError, UnicodeDecodeError):
            continue  # not JSON: not ours to judge
        if box_formats.looks_like_coco(raw):
            found.append((path, box_formats.read_coco(raw, where=path)))
    return found


def _plan_coco(listing: Listing, cocos: list[tuple[str, box_formats.CocoDataset]]) -> ImportPlan:
    plan = ImportPlan(COCO, [])
    index: dict[str, int] = {}
    taken: set[str] = set()
    for json_path, doc in cocos:
        for name in doc.classes:
            if class_key(name) not in index:
                index[class_key(name)] = len(plan.classes)
                plan.classes.append(name)
        for dropped in doc.dropped_categories:
            plan.findings.append((Reason.PLACEHOLDER, f"{dropped} ({json_path})"))
        plan.findings += [(_BOX_REASONS.get(r, Reason.MALFORMED), e) for r, e in doc.skipped]
        base = PurePosixPath(json_path).parent.as_posix()
        split = split_word(PurePosixPath(json_path).name.split(".")[0]) or split_of_path(json_path)
        for image in doc.images:
            plan.findings += [
                (_BOX_REASONS.get(r, Reason.MALFORMED), f"{json_path}: {e}")
                for r, e in image.skipped
            ]
            path = listing.resolve(image.file_name, base=base)
            if path is None or not is_image(path):
                plan.findings.append((Reason.NOT_FOUND, f"{image.file_name} ({json_path})"))
                continue
            if path in taken:
                continue
            taken.add(path)
            boxes = [
                (index[class_key(b.category)], (b.left, b.top, b.right, b.bottom))
                for b in image.boxes
                if class_key(b.category) in index
            ]
            frame = (image.width, image.height) if image.width and image.height else None
            plan.images.append(
                PlannedImage(
                    path,
                    split or split_of_path(path),
                    pixels=PixelBoxes(boxes, frame, image.annotated),
                    where=json_path,
                )
            )
    _add_unlisted(plan, listing, taken)
    return plan


def _add_unlisted(plan: ImportPlan, listing: Listing, taken: set[str]) -> None:
    """Images the annotation files do not mention come in unlabelled."""
    for path in listing.files:
        if is_image(path) and path not in taken:
            plan.images.append(PlannedImage(path, split_of_path(path)))


# --- Pascal VOC -------------------------------------------------------------------------------


def _is_voc(read: Reader, xmls: list[str]) -> bool:
    """Whether one of the first XML files (another XML may sort before the annotations) is a
    VOC annotation."""
    for path in xmls[:MAX_VOC_PROBES]:
        try:
            head = read(path)[:4096].decode("utf-8", errors="replace")
        except Invalid:
            continue  # too large to be one annotation
        if "<annotation" in head:
            return True
    return False


def _plan_voc(listing: Listing, read: Reader, xmls: list[str]) -> ImportPlan:
    labelmap = [f for f in listing.files if PurePosixPath(f).name.casefold() == "labelmap.txt"]
    declared = box_formats.read_labelmap(_text(read, labelmap[0])) if labelmap else None
    stems_split = _image_sets(listing, read)
    docs: list[tuple[str, box_formats.SourceImage]] = []
    plan = ImportPlan(VOC, [])
    for path in xmls:
        try:
            docs.append((path, box_formats.read_voc(read(path), where=path)))
        except Invalid as error:
            plan.findings.append((Reason.MALFORMED, f"{path} ({error.message})"))
    if declared is not None:
        plan.classes = list(declared)
    else:
        # No label map: the names the objects use, in alphabetical order (as Roboflow numbers
        # them), each once whatever its case.
        spelled: dict[str, str] = {}
        for _, doc in docs:
            for box in doc.boxes:
                spelled.setdefault(class_key(box.category), box.category.strip())
        plan.classes = [spelled[k] for k in sorted(spelled)]
    index = {class_key(name): i for i, name in enumerate(plan.classes)}
    taken: set[str] = set()
    for xml_path, doc in docs:
        plan.findings += [
            (_BOX_REASONS.get(r, Reason.MALFORMED), f"{xml_path}: {e}") for r, e in doc.skipped
        ]
        base = PurePosixPath(xml_path).parent.as_posix()
        image = _voc_image(listing, doc.file_name, xml_path, base)
        if image is None:
            plan.findings.append((Reason.NOT_FOUND, f"{doc.file_name or '?'} ({xml_path})"))
            continue
        if image in taken:
            continue
        taken.add(image)
        boxes: list[tuple[int, Edges]] = []
        for box in doc.boxes:
            position = index.get(class_key(box.category))
            if position is None:
                plan.findings.append(
                    (Reason.UNKNOWN_CATEGORY, f"{xml_path}: {box.category!r} (not in labelmap)")
                )
                continue
            boxes.append((position, (box.left, box.top, box.right, box.bottom)))
        frame = (doc.width, doc.height) if doc.width and doc.height else None
        stem = PurePosixPath(image).stem
        split = stems_split.get(stem) or split_of_path(image) or split_of_path(xml_path)
        pixels = PixelBoxes(boxes, frame, doc.annotated)
        plan.images.append(PlannedImage(image, split, pixels=pixels, where=xml_path))
    _add_unlisted(plan, listing, taken)
    return plan


def _voc_image(listing: Listing, file_name: str, xml_path: str, base: str) -> str | None:
    if file_name:
        found = listing.resolve(file_name, base=base)
        if found is not None and is_image(found):
            return found
    # The XML's own name with an image suffix (labelImg, Roboflow): the one nearest it.
    stem = PurePosixPath(xml_path).stem
    candidates = [
        path
        for name in {stem + s for s in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif")}
        for path in listing.named(name)
    ]
    if not candidates:
        return None
    return listing.resolve(PurePosixPath(candidates[0]).name, base=base)


def _image_sets(listing: Listing, read: Reader) -> dict[str, str]:
    """VOC's ``ImageSets/Main/{train,val,test}.txt``: image stem → split."""
    found: dict[str, str] = {}
    for path in listing.files:
        pure = PurePosixPath(path)
        if pure.parent.name != "Main" or pure.suffix != ".txt":
            continue
        split = split_word(pure.stem)
        if split is None:
            continue
        for line in list_file_entries(_text(read, path)):
            found.setdefault(line.split()[0], split)
    return found


# --- YOLO -------------------------------------------------------------------------------------


def _plan_yolo(listing: Listing, read: Reader) -> ImportPlan:
    fmt, classes, entries, used = _yolo_names_and_splits(listing, read)
    plan = ImportPlan(fmt, classes)
    placed: dict[str, str | None] = {}
    for split, references, base in entries:
        for reference in references:
            for image in _resolve_entry(listing, read, reference, base, plan, used):
                placed.setdefault(image, split)
    for path in listing.files:
        if is_image(path) and path not in placed:
            placed[path] = split_of_path(path)
    label_files = {
        f
        for f in listing.files
        if f.endswith(".txt")
        and f not in used
        and PurePosixPath(f).name.casefold() not in NOT_LABELS
        and not PurePosixPath(f).name.casefold().startswith("readme")
    }
    claimed: set[str] = set()
    for path in sorted(placed):
        label = next((c for c in yolo_label_candidates(path) if c in label_files), None)
        if label is not None:
            claimed.add(label)
        plan.images.append(PlannedImage(path, placed[path], label_path=label, where=label or ""))
    for orphan in sorted(label_files - claimed):
        plan.findings.append((Reason.ORPHAN_LABEL, orphan))
    return plan


def _yolo_names_and_splits(
    listing: Listing, read: Reader
) -> tuple[str, list[str], list[tuple[str, list[str], str]], set[str]]:
    """The format, the class names, the split entries (split, references, base folder) and
    the files read for them (not label files)."""
    used: set[str] = set()
    yamls, broken = _dataset_yamls(listing, read)
    markers = ("obj.data", "obj.names", "notes.json", "classes.txt")
    if not yamls and broken and not any(listing.named(m) for m in markers):
        raise broken[0]  # nothing else says what the dataset is: its YAML must be this one
    if yamls:
        path, raw = yamls[0]
        used.add(path)
        base = PurePosixPath(path).parent.as_posix()
        entries = [(split, refs, base) for split, refs in dataset_yaml_splits(raw).items()]
        fmt = ROBOFLOW if "roboflow" in raw else ULTRALYTICS
        return fmt, class_names(raw, where=path), entries, used
    data = _named(listing, "obj.data")
    names_file = _named(listing, "obj.names")
    if data is not None or names_file is not None:
        entries = []
        classes: list[str] = []
        if data is not None:
            used.add(data)
            base = PurePosixPath(data).parent.as_posix()
            settings = read_darknet_data(_text(read, data))
            for key in ("train", "valid", "val", "test"):
                if key in settings:
                    entries.append((SPLIT_WORDS_KEY[key], [settings[key]], base))
            if names_file is None and "names" in settings:
                names_file = listing.resolve(settings["names"], base=base)
        if names_file is not None:
            used.add(names_file)
            classes = read_names_file(_text(read, names_file))
        return CVAT, classes, entries, used
    notes = _named(listing, "notes.json")
    if notes is not None:
        used.add(notes)
        try:
            names = notes_json_names(json.loads(read(notes)))
        except ValueError:
            names = None
        if names is not None:
            return LABEL_STUDIO, names, [], used
    classes_txt = _named(listing, "classes.txt")
    if classes_txt is not None:
        used.add(classes_txt)
        fmt = LABEL_STUDIO if notes is not None else PLAIN_YOLO
        return fmt, read_names_file(_text(read, classes_txt)), [], used
    return PLAIN_YOLO, [], [], used


SPLIT_WORDS_KEY = {"train": "train", "valid": "val", "val": "val", "test": "test"}


def _named(listing: Listing, name: str) -> str | None:
    """The shallowest file of that name (ignoring case)."""
    found = sorted(listing.named(name), key=lambda p: (p.count("/"), p))
    return found[0] if found else None


def _dataset_yamls(
    listing: Listing, read: Reader
) -> tuple[list[tuple[str, dict[str, object]]], list[Invalid]]:
    """The YAML files that name classes, ``data.yaml`` first, then the shallowest; and why the
    ones that could not be read were not (a CI or tool config beside the dataset must not
    refuse it)."""
    paths = sorted(
        (f for f in listing.files if f.lower().endswith((".yaml", ".yml"))),
        key=lambda p: (PurePosixPath(p).name.casefold() != "data.yaml", p.count("/"), p),
    )
    found: list[tuple[str, dict[str, object]]] = []
    broken: list[Invalid] = []
    for path in paths:
        try:
            raw = _yaml(read, path)
        except Invalid as error:
            broken.append(error)
            continue
        if isinstance(raw, dict) and "names" in raw:
            found.append((path, raw))
    return found, broken


def _resolve_entry(
    listing: Listing,
    read: Reader,
    reference: str,
    base: str,
    plan: ImportPlan,
    used: set[str],
) -> list[str]:
    """The images a split entry names: a folder's images, or a list file's lines."""
    if reference.lower().endswith(".txt"):
        list_path = listing.resolve(reference, base=base)
        if list_path is None:
            plan.findings.append((Reason.NOT_FOUND, f"list file {reference}"))
            return []
        used.add(list_path)
        list_base = PurePosixPath(list_path).parent.as_posix()
        images: list[str] = []
        for line in list_file_entries(_text(read, list_path)):
            found = listing.resolve(line, base=list_base)
            if found is None or not is_image(found):
                plan.findings.append((Reason.NOT_FOUND, f"{line} ({list_path})"))
            else:
                images.append(found)
        return images
    folder = listing.resolve(reference, base=base, folder=True)
    return listing.images_under(folder) if folder is not None else []


__all__ = [
    "COCO",
    "CVAT",
    "LABEL_STUDIO",
    "PLAIN_YOLO",
    "ROBOFLOW",
    "ULTRALYTICS",
    "VOC",
    "ImportPlan",
    "PixelBoxes",
    "PlannedImage",
    "plan_import",
]
