"""Dataset versions, pure: the recipe a person chooses (checked whole before a task is queued),
the augmentation each output of each image gets (drawn from the seed, so a recipe rebuilds the
same files), and how the classes of several projects become one list.

The worker (``app.tasks.versions``) does the pixels; ``app.domain.box_geometry`` moves boxes.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.domain.box_geometry import ResizeMode, YoloBox
from app.domain.errors import Invalid
from app.domain.splits import validate_ratios

MAX_OUTPUTS = 10  # augmented copies of one train image
MAX_ROTATION = 45.0  # degrees either way; beyond it boxes around rotated corners grow useless
MAX_SIDE = 8192  # a resize or tile target, pixels
MIN_SIDE = 32
SPLIT_MODES = ("keep", "redraw")
NAME_MAX = 64
BUILDING, READY, FAILED = "building", "ready", "failed"
VERSION_KIND = "build_version"  # the task kind that builds one


@dataclass
class VersionInfo:
    """A dataset version as stored: ``path`` is its folder (whole once ``status`` is ready);
    ``sources`` holds ``projects`` (in order) and the class-mapping ``choices``."""

    name: str
    path: Path
    recipe: dict[str, Any]
    sources: dict[str, Any]
    classes: list[str]
    counts: dict[str, Any]
    status: str
    created_at: float
    task_id: int | None = None
    error: str | None = None
    ready_at: float | None = None
    id: int = 0

    @property
    def projects(self) -> list[str]:
        return list(self.sources.get("projects", []))


@dataclass(frozen=True)
class SourceImage:
    """One image of a source project, its boxes in the project's class indices until the
    version task maps them to the version's."""

    project: str
    stem: str
    suffix: str
    path: Path
    split: str
    sha256: str
    boxes: list[YoloBox]


@dataclass
class ProjectSources:
    """What a version takes from one project: its classes in YOLO order, its labelled images
    that are on disk (by id), and how many it leaves out (unlabelled or missing)."""

    project: str
    classes: list[str]
    images: list[SourceImage]
    left_out: int = 0


def validate_version_name(name: object) -> str:
    """The name if it can name a version and its folder, else ``Invalid``."""
    if not isinstance(name, str) or not name.strip():
        raise Invalid("Give the version a name.")
    if len(name) > NAME_MAX:
        raise Invalid(f"A version name has at most {NAME_MAX} characters, not {len(name)}.")
    if len(name.casefold()) > NAME_MAX:  # the unique key: "ß" folds to "ss"
        raise Invalid(
            f"A version name has at most {NAME_MAX} characters once its case is folded "
            f"({name!r} folds to {len(name.casefold())})."
        )
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise Invalid("The version name contains a control character; use letters and digits.")
    if name.startswith(".") or any(ch in name for ch in "/\\ ") or ".." in name:
        raise Invalid(
            f"Version name {name!r} may not hold spaces, '/', '\\', '..' or start with a dot; "
            "use letters, digits, -, . and _."
        )
    return name


@dataclass(frozen=True)
class Preprocessing:
    """Applied to every image of every split, in this order: orient, tile, resize, drop."""

    auto_orient: bool = True
    resize: int | None = None  # target side, pixels
    resize_mode: ResizeMode = ResizeMode.FIT_PAD
    tile: int | None = None  # tile side, pixels
    tile_overlap: float = 0.2
    tile_min_visible: float = 0.4  # share of a box's area a tile must hold to keep it
    drop_empty: bool = False  # leave out images (and tiles) without boxes


@dataclass(frozen=True)
class Augmentation:
    """Train split only: ``outputs`` augmented copies of each image besides the original. Each
    enabled operation is drawn per copy: flips and grayscale by a coin, quarter turns among 0-3,
    the rest uniformly within +-limit."""

    outputs: int = 0
    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotate90: bool = False
    rotation: float = 0.0  # degrees, +-
    brightness: float = 0.0  # share, +-: 0.25 is up to 25 % brighter or darker
    contrast: float = 0.0  # share, +-
    blur: float = 0.0  # largest Gaussian sigma, pixels
    noise: float = 0.0  # largest Gaussian noise standard deviation, in 0-255 levels
    grayscale: float = 0.0  # chance of a copy being grayscale

    @property
    def enabled(self) -> bool:
        return self.outputs > 0


@dataclass(frozen=True)
class Recipe:
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    augmentation: Augmentation = field(default_factory=Augmentation)
    seed: int = 0
    split_mode: str = "keep"  # each image keeps its split, or "redraw" by ``ratios``
    ratios: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AugmentationStep:
    """What one augmented copy gets, in the order the worker applies it: quarter turns, flips,
    small rotation (geometry), then brightness/contrast, blur, noise, grayscale (pixels)."""

    quarter_turns: int = 0
    flip_horizontal: bool = False
    flip_vertical: bool = False
    degrees: float = 0.0
    brightness: float = 0.0  # added, in 0-255 levels
    contrast: float = 1.0  # multiplied around mid-grey
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    noise_seed: int = 0
    grayscale: bool = False


def plan_augmentation(recipe: Recipe, image_key: str, copy: int) -> AugmentationStep:
    """The augmentation of copy ``copy`` of one image, a function of the seed, the image (its
    content hash) and the copy number only: no other image or order of work changes it."""
    aug = recipe.augmentation
    # A string seed is hashed with SHA-512 by ``random``: the same on every run and machine.
    draw = random.Random(f"{recipe.seed}/{image_key}/{copy}")
    return AugmentationStep(
        quarter_turns=draw.randrange(4) if aug.rotate90 else 0,
        flip_horizontal=aug.flip_horizontal and draw.random() < 0.5,
        flip_vertical=aug.flip_vertical and draw.random() < 0.5,
        degrees=round(draw.uniform(-aug.rotation, aug.rotation), 3) if aug.rotation else 0.0,
        brightness=round(draw.uniform(-aug.brightness, aug.brightness) * 255, 3)
        if aug.brightness
        else 0.0,
        contrast=round(1 + draw.uniform(-aug.contrast, aug.contrast), 4) if aug.contrast else 1.0,
        blur_sigma=round(draw.uniform(0, aug.blur), 3) if aug.blur else 0.0,
        noise_std=round(draw.uniform(0, aug.noise), 3) if aug.noise else 0.0,
        noise_seed=draw.randrange(2**32),
        grayscale=bool(aug.grayscale) and draw.random() < aug.grayscale,
    )


# --- checking a recipe --------------------------------------------------------------------------


def _bool(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise Invalid(f"{where} {key.replace('_', ' ')} must be true or false.")
    return value


def _number(raw: dict[str, Any], key: str, low: float, high: float, where: str) -> float:
    value = raw.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{where} {key.replace('_', ' ')} must be a number.")
    if not low <= value <= high:
        raise Invalid(f"{where} {key.replace('_', ' ')} must lie between {low:g} and {high:g}.")
    return float(value)


def _side(raw: dict[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{where} {key} must be a whole number of pixels.")
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise Invalid(f"{where} {key} must lie between {MIN_SIDE} and {MAX_SIDE} pixels.")
    return value


def _known_keys(raw: object, allowed: set[str], where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Invalid(f"{where} must be a mapping of settings.")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise Invalid(f"{where}: unknown setting {', '.join(map(str, unknown))}.")
    return raw


def validate_recipe(raw: dict[str, Any]) -> Recipe:
    """A recipe from what a form or the API sent, every value checked; unknown keys refused so
    a typo never silently does nothing."""
    top = _known_keys(
        raw, {"preprocessing", "augmentation", "seed", "split_mode", "ratios"}, "The recipe"
    )
    pre_raw = _known_keys(
        top.get("preprocessing"), set(Preprocessing.__dataclass_fields__), "Preprocessing"
    )
    aug_raw = _known_keys(
        top.get("augmentation"), set(Augmentation.__dataclass_fields__), "Augmentation"
    )
    mode = pre_raw.get("resize_mode", ResizeMode.FIT_PAD.value)
    if mode not in {m.value for m in ResizeMode}:
        raise Invalid(
            f"Resize mode must be one of {', '.join(m.value for m in ResizeMode)}, not {mode!r}."
        )
    pre = Preprocessing(
        auto_orient=_bool(pre_raw, "auto_orient", True, "Preprocessing:"),
        resize=_side(pre_raw, "resize", "Preprocessing: resize"),
        resize_mode=ResizeMode(mode),
        tile=_side(pre_raw, "tile", "Preprocessing: tile"),
        tile_overlap=_number(
            {"tile_overlap": pre_raw.get("tile_overlap", 0.2)},
            "tile_overlap",
            0,
            0.9,
            "Preprocessing:",
        ),
        tile_min_visible=_number(
            {"tile_min_visible": pre_raw.get("tile_min_visible", 0.4)},
            "tile_min_visible",
            0.01,
            1,
            "Preprocessing:",
        ),
        drop_empty=_bool(pre_raw, "drop_empty", False, "Preprocessing:"),
    )
    outputs = aug_raw.get("outputs", 0)
    if isinstance(outputs, bool) or not isinstance(outputs, int) or not 0 <= outputs <= MAX_OUTPUTS:
        raise Invalid(f"Augmentation: outputs must be a whole number from 0 to {MAX_OUTPUTS}.")
    aug = Augmentation(
        outputs=outputs,
        flip_horizontal=_bool(aug_raw, "flip_horizontal", False, "Augmentation:"),
        flip_vertical=_bool(aug_raw, "flip_vertical", False, "Augmentation:"),
        rotate90=_bool(aug_raw, "rotate90", False, "Augmentation:"),
        rotation=_number(aug_raw, "rotation", 0, MAX_ROTATION, "Augmentation:"),
        brightness=_number(aug_raw, "brightness", 0, 1, "Augmentation:"),
        contrast=_number(aug_raw, "contrast", 0, 1, "Augmentation:"),
        blur=_number(aug_raw, "blur", 0, 10, "Augmentation:"),
        noise=_number(aug_raw, "noise", 0, 100, "Augmentation:"),
        grayscale=_number(aug_raw, "grayscale", 0, 1, "Augmentation:"),
    )
    if aug.outputs and not _any_operation(aug):
        raise Invalid("Augmentation: choose at least one operation for the augmented copies.")
    seed = top.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise Invalid("The seed must be a whole number from 0 to 2147483647.")
    split_mode = top.get("split_mode", "keep")
    if split_mode not in SPLIT_MODES:
        raise Invalid("Splits must be kept (keep) or drawn again by ratio (redraw).")
    ratios = top.get("ratios") or {"train": 0.8, "val": 0.1, "test": 0.1}
    if not isinstance(ratios, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in ratios.values()
    ):
        raise Invalid("Split ratios must give a number for train, val and test.")
    return Recipe(pre, aug, seed, split_mode, validate_ratios(dict(ratios)))


def _any_operation(aug: Augmentation) -> bool:
    return any(
        (
            aug.flip_horizontal,
            aug.flip_vertical,
            aug.rotate90,
            aug.rotation,
            aug.brightness,
            aug.contrast,
            aug.blur,
            aug.noise,
            aug.grayscale,
        )
    )


# --- classes across projects ----------------------------------------------------------------


def class_key(name: str) -> str:
    """Names that mean one class: case and surrounding spaces ignored (``Car`` and ``car ``)."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class ClassMapping:
    """The version's classes, and for each source project its class index -> version index
    (``None``: the class is dropped with its boxes)."""

    names: list[str]
    index_of: dict[str, dict[int, int | None]]


def map_classes(
    projects: dict[str, list[str]], choices: dict[str, dict[str, str | None]] | None = None
) -> ClassMapping:
    """One class list for several projects (in project then class order, first spelling kept).

    Classes whose normalised names agree become one class. ``choices[project][class]`` changes
    that: a name (merge into that class or rename: a new name makes a new class) or ``None``
    (drop the class and its boxes)."""
    choices = choices or {}
    for project, chosen in choices.items():
        if project not in projects:
            raise Invalid(f"Class mapping names project {project!r}, which is not combined.")
        unknown = sorted(set(chosen) - set(projects[project]))
        if unknown:
            raise Invalid(f"Project {project!r} has no class {', '.join(map(repr, unknown))}.")
    names: list[str] = []
    position: dict[str, int] = {}
    index_of: dict[str, dict[int, int | None]] = {}
    for project, classes in projects.items():
        chosen = choices.get(project, {})
        index_of[project] = {}
        for index, name in enumerate(classes):
            target = chosen.get(name, name)
            if target is None:
                index_of[project][index] = None
                continue
            if not target.strip():
                raise Invalid(f"The new name of {project}/{name} is blank.")
            key = class_key(target)
            if key not in position:
                position[key] = len(names)
                names.append(" ".join(target.split()))  # as data.yaml and the counts spell it
            index_of[project][index] = position[key]
    if not names:
        raise Invalid("Every class is dropped: a version needs at least one class.")
    return ClassMapping(names, index_of)


def unmatched_classes(projects: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per project, the classes no other combined project has (by normalised name): what the
    mapping screen asks about."""
    keys = {p: {class_key(c) for c in classes} for p, classes in projects.items()}
    return {
        project: [
            c
            for c in classes
            if not any(class_key(c) in keys[other] for other in projects if other != project)
        ]
        for project, classes in projects.items()
    }
