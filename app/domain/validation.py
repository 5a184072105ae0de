"""Rules for names and boxes, checked at the edge of every store so bad input changes nothing."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from app.domain.errors import Invalid
from app.domain.models import SPLITS, Annotation

PROJECT_NAME_MAX = 64
CLASS_NAME_MAX = 100
FILENAME_MAX_BYTES = 200
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def validate_project_name(name: object) -> str:
    """Return the name if it can be a project (and folder) name, else raise ``Invalid``."""
    if not isinstance(name, str) or name == "":
        raise Invalid("Project name is empty: give the project a name.")
    if len(name) > PROJECT_NAME_MAX:
        raise Invalid(
            f"Project name is {len(name)} characters long; at most {PROJECT_NAME_MAX} are allowed."
        )
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise Invalid("Project name contains a control character; use letters, digits, - and _.")
    if "/" in name or "\\" in name or ".." in name:
        raise Invalid(
            f"Project name {name!r} contains a path character ('/', '\\' or '..'); "
            "use letters, digits, - and _."
        )
    if " " in name:
        raise Invalid(f"Project name {name!r} contains a space; use - or _ instead.")
    if not _PROJECT_NAME.fullmatch(name):
        raise Invalid(
            f"Project name {name!r} is not allowed: start with a letter or digit, "
            "then use only letters, digits, - and _."
        )
    return name


def validate_class_name(name: object) -> str:
    """Return the class name with surrounding spaces removed, or raise ``Invalid``."""
    if not isinstance(name, str):
        raise Invalid("Class name must be text.")
    if "\n" in name or "\r" in name:
        raise Invalid(f"Class name {name.strip()!r} contains a line break; use one line.")
    cleaned = name.strip()
    if cleaned == "":
        raise Invalid("Class name is empty: give every class a name.")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise Invalid(f"Class name {cleaned!r} contains a control character.")
    if len(cleaned) > CLASS_NAME_MAX:
        raise Invalid(f"Class name {cleaned[:20]!r}… is longer than {CLASS_NAME_MAX} characters.")
    return cleaned


def validate_class_names(names: list[str]) -> list[str]:
    """Validate an ordered class list: each name valid, no duplicates ignoring case."""
    cleaned = [validate_class_name(n) for n in names]
    seen: dict[str, str] = {}
    for name in cleaned:
        key = name.casefold()
        if key in seen:
            raise Invalid(
                f"Class name {name!r} is given twice (as {seen[key]!r} and {name!r}); "
                "class names must differ, ignoring case."
            )
        seen[key] = name
    return cleaned


def validate_colour(colour: str) -> str:
    if not _COLOUR.fullmatch(colour):
        raise Invalid(f"Colour {colour!r} is not of the form #rrggbb.")
    return colour.lower()


def validate_split(split: object) -> str:
    if split not in SPLITS:
        raise Invalid(f"Split {split!r} is not one of {', '.join(SPLITS)}.")
    return str(split)


def safe_filename(original: str) -> str:
    """Make an upload's name safe to store: no folders, no control characters, bounded length.

    Keeps the original name when it is already safe. Raises ``Invalid`` when nothing usable is
    left or the extension is not an image type ydc stores.
    """
    name = original.replace("\\", "/")
    name = PurePosixPath(name).name
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    stem, dot, suffix = name.strip().rpartition(".")
    if not dot:
        raise Invalid(f"File name {original!r} has no extension; ydc stores {_suffix_list()}.")
    suffix = "." + suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise Invalid(f"File name {original!r} is not an image type ydc stores ({_suffix_list()}).")
    # No hidden files, no "." or ".." stems.
    stem = re.sub(r"\s+", " ", stem).strip().strip(".").strip()
    stem = stem.replace("/", "_")
    if stem in ("", ".", ".."):
        stem = "image"
    # Bytes, not characters: the disk's limit is 255 bytes, and "-NNNN" or ".txt" may follow.
    budget = FILENAME_MAX_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip()
    return (stem or "image") + suffix


def _suffix_list() -> str:
    return ", ".join(IMAGE_SUFFIXES)


def validate_annotation(ann: Annotation, *, num_classes: int, width: int, height: int) -> None:
    """Raise ``Invalid`` unless the box names an existing class and lies inside the image.

    Corners may exceed [0, 1] by float noise (1e-6) only; width and height must be at least
    one pixel of the upright image.
    """
    if not isinstance(ann.class_id, int) or isinstance(ann.class_id, bool):
        raise Invalid(f"Class index {ann.class_id!r} is not a whole number.")
    if not 0 <= ann.class_id < num_classes:
        raise Invalid(
            f"Class index {ann.class_id} is out of range: the project has {num_classes} "
            f"class{'es' if num_classes != 1 else ''} (0..{num_classes - 1})."
        )
    values = (ann.x, ann.y, ann.width, ann.height)
    if not all(isinstance(v, int | float) and v == v for v in values):
        raise Invalid(f"Box {values} has a value that is not a number.")
    eps = 1e-6
    left, right = ann.x - ann.width / 2, ann.x + ann.width / 2
    top, bottom = ann.y - ann.height / 2, ann.y + ann.height / 2
    if left < -eps or top < -eps or right > 1 + eps or bottom > 1 + eps:
        raise Invalid(
            f"Box centre ({ann.x:.4g}, {ann.y:.4g}) size ({ann.width:.4g}, {ann.height:.4g}) "
            "reaches outside the image; coordinates are fractions of the image in [0, 1]."
        )
    if width > 0 and height > 0 and (ann.width * width < 1 - eps or ann.height * height < 1 - eps):
        raise Invalid(
            "Box is smaller than one pixel "
            f"({ann.width * width:.2f} x {ann.height * height:.2f} px)."
        )


def unsafe_member_path(name: str) -> bool:
    """Whether a zip member's path is absolute, names a drive, or climbs out of the archive."""
    path = PurePosixPath(name.replace("\\", "/"))
    return (
        name.startswith(("/", "\\"))
        or path.is_absolute()
        or ".." in path.parts
        or (bool(path.parts) and ":" in path.parts[0])  # C:\..., a drive
    )
