"""The instance's preferences: the annotator's keymap, the split ratios a new project starts
with, the auto-label thresholds the forms start from, and the size of the grid's tiles.

Pure rules, no storage: what each preference may hold (types, ranges, defaults), how a key
written by a person is put in the one form the annotator compares with (``Ctrl+Shift+z``), and
the whole-set checks (two actions on one key, a key the browser keeps). A change is a *patch*
(only the preferences it names); ``apply_patch`` merges it into the current values and checks the
result whole, so an import or a form either changes everything it names or nothing.

The stored form is a plain ``dict`` of top-level key -> JSON value (``Preferences.to_dict``);
what is not stored takes its default (a keymap action added in a later version gets its default
keys unless one of them is taken meanwhile).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.errors import Invalid
from app.domain.models import SPLITS
from app.domain.splits import DEFAULT_RATIOS


class PreferenceInvalid(Invalid):
    """A preference refused; ``field`` names the form field the message belongs beside
    (``keymap.next``, ``split_ratios.val``, ``autolabel.conf``, ``thumbnail_size``)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


# --- the keymap ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One thing the annotator does from the keyboard."""

    name: str  # the id static/annotator.js runs
    group: str
    label: str  # short, for messages and the settings form
    help: str  # the annotator's shortcut list
    keys: tuple[str, ...]  # the default keys, in the normal form


ACTIONS: tuple[Action, ...] = (
    Action("next", "Images", "Next image", "Save, then go to the next image", ("d", "ArrowRight")),
    Action(
        "previous",
        "Images",
        "Previous image",
        "Save, then go to the previous image",
        ("a", "ArrowLeft"),
    ),
    Action(
        "save", "Images", "Save", "Save now (changes also save after a moment)", ("s", "Ctrl+s")
    ),
    Action(
        "noObjects",
        "Images",
        "No objects",
        "Mark (or unmark) the image as having no objects",
        ("n",),
    ),
    Action(
        "copyPrevious",
        "Images",
        "Copy previous image's boxes",
        "Copy every box of the previous image (the one you came from)",
        ("p",),
    ),
    Action(
        "drawMode",
        "Boxes",
        "Draw a box",
        "Draw: the next drag draws a box, even over other boxes",
        ("w",),
    ),
    *(
        Action(
            f"class{n}",
            "Classes",
            f"Class {n}",
            f"Current class {n}; also changes the selected boxes",
            (str(n % 10),),
        )
        for n in range(1, 11)
    ),
    Action(
        "searchClass",
        "Boxes",
        "Search classes",
        "Search the classes by name (Enter picks, Esc goes back)",
        ("c",),
    ),
    Action("cycleNext", "Boxes", "Select next box", "Select the next box", ("Tab",)),
    Action(
        "cyclePrevious", "Boxes", "Select previous box", "Select the previous box", ("Shift+Tab",)
    ),
    Action("selectAll", "Boxes", "Select all boxes", "Select every box", ("Ctrl+a",)),
    Action("delete", "Boxes", "Delete boxes", "Delete the selected boxes", ("Delete", "Backspace")),
    Action("escape", "Boxes", "Stop / clear", "Stop drawing, clear the selection", ("Escape",)),
    Action("undo", "Edit", "Undo", "Undo", ("Ctrl+z",)),
    Action("redo", "Edit", "Redo", "Redo", ("Ctrl+Shift+z", "Ctrl+y")),
    Action(
        "copy",
        "Edit",
        "Copy boxes",
        "Copy the selected boxes (also to paste on another image)",
        ("Ctrl+c",),
    ),
    Action("paste", "Edit", "Paste boxes", "Paste the copied boxes", ("Ctrl+v",)),
    Action(
        "accept",
        "Suggestions",
        "Accept suggestion",
        "Accept the selected suggestion (selects the first one when none is)",
        ("Enter",),
    ),
    Action("reject", "Suggestions", "Reject suggestion", "Reject the selected suggestion", ("x",)),
    Action(
        "acceptAll",
        "Suggestions",
        "Accept all suggestions",
        "Accept every suggestion on the image",
        ("Shift+Enter",),
    ),
    Action(
        "rejectAll",
        "Suggestions",
        "Reject all suggestions",
        "Reject every suggestion on the image",
        ("Shift+x",),
    ),
    Action("zoomIn", "View", "Zoom in", "Zoom in", ("+", "=")),
    Action("zoomOut", "View", "Zoom out", "Zoom out", ("-",)),
    Action("fit", "View", "Fit", "Fit the image to the window", ("f",)),
    Action("toggleNames", "View", "Class names", "Show or hide the class names", ("l",)),
    Action("help", "View", "Keys help", "Show this list", ("?",)),
)
ACTION_BY_NAME: dict[str, Action] = {a.name: a for a in ACTIONS}
DEFAULT_KEYMAP: dict[str, tuple[str, ...]] = {a.name: a.keys for a in ACTIONS}
MAX_KEYS_PER_ACTION = 4

MODIFIERS = ("Ctrl", "Alt", "Shift")  # the order the normal form writes them in
_MODIFIER_NAMES = {
    "ctrl": "Ctrl",
    "control": "Ctrl",
    "cmd": "Ctrl",  # the annotator takes Meta (macOS Command) as Ctrl
    "meta": "Ctrl",
    "alt": "Alt",
    "option": "Alt",
    "shift": "Shift",
}
NAMED_KEYS = (
    "ArrowLeft",
    "ArrowRight",
    "ArrowUp",
    "ArrowDown",
    "Enter",
    "Tab",
    "Escape",
    "Delete",
    "Backspace",
    "Insert",
    "Home",
    "End",
    "PageUp",
    "PageDown",
    *(f"F{n}" for n in range(1, 13)),
)
_NAMED = {k.lower(): k for k in NAMED_KEYS} | {
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "return": "Enter",
    "esc": "Escape",
    "del": "Delete",
    "ins": "Insert",
    "pgup": "PageUp",
    "pgdn": "PageDown",
}
# Keys the annotator cannot take: the browser acts on them before the page sees them (or the
# user expects it to), or the annotator keeps them for itself (Space pans while held).
RESERVED_KEYS: dict[str, str] = {
    "Space": "the annotator pans the image while Space is held",
    "Ctrl+w": "the browser closes the tab",
    "Ctrl+Shift+w": "the browser closes the window",
    "Ctrl+t": "the browser opens a tab",
    "Ctrl+Shift+t": "the browser reopens a closed tab",
    "Ctrl+n": "the browser opens a window",
    "Ctrl+Shift+n": "the browser opens a private window",
    "Ctrl+q": "the browser quits",
    "Ctrl+l": "the browser goes to its address bar",
    "Ctrl+r": "the browser reloads the page",
    "Ctrl+Shift+r": "the browser reloads the page",
    "F5": "the browser reloads the page",
    "F11": "the browser goes full screen",
    "F12": "the browser opens its developer tools",
    "Ctrl+Tab": "the browser goes to the next tab",
    "Ctrl+Shift+Tab": "the browser goes to the previous tab",
    "Ctrl+PageUp": "the browser goes to the previous tab",
    "Ctrl+PageDown": "the browser goes to the next tab",
    "Alt+ArrowLeft": "the browser goes back",
    "Alt+ArrowRight": "the browser goes forward",
    "Alt+F4": "the system closes the window",
}
_PRINTABLE = re.compile(r"^[!-~]$")  # one visible ASCII character (no space)


def normalize_key(text: str) -> str:
    """The normal form of a key as a person writes it: ``ctrl+Z`` -> ``Ctrl+z``, ``right`` ->
    ``ArrowRight``, ``K`` -> ``k``. Raises ``Invalid`` (without a field) for what no key
    press of the annotator can be."""
    raw = text.strip()
    if not raw:
        raise Invalid("A key cannot be empty.")
    if raw.lower() == "space":
        return "Space"
    # "+" alone, or as the last part ("Ctrl++"), is the plus key.
    *mods, key = _parts(raw)
    found: set[str] = set()
    for mod in mods:
        name = _MODIFIER_NAMES.get(mod.strip().lower())
        if name is None:
            raise Invalid(f"{text!r} is not a key: {mod!r} is not Ctrl, Alt or Shift.")
        found.add(name)
    key = key.strip()
    if key.lower() == "space":
        key = "Space"
    elif key.lower() in _NAMED:
        key = _NAMED[key.lower()]
    elif _PRINTABLE.match(key):
        if key.isalpha():
            key = key.lower()
        elif "Shift" in found:
            raise Invalid(
                f"{text!r}: write the character Shift makes instead (for example ? rather "
                "than Shift+/)."
            )
    else:
        raise Invalid(
            f"{text!r} is not a key the annotator knows: one letter, digit or sign, or one of "
            f"{', '.join(NAMED_KEYS[:14])}, F1 … F12, with Ctrl+, Alt+ or Shift+ before it."
        )
    return "".join(f"{m}+" for m in MODIFIERS if m in found) + key


def parse_keys(text: str) -> list[str]:
    """The keys of one action as typed in its field: separated by spaces or commas."""
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    return [normalize_key(t) for t in tokens]


def _parts(key: str) -> list[str]:
    if key == "+":
        return ["+"]
    if key.endswith("++"):
        return [*key[:-2].split("+"), "+"]
    return key.split("+")


def key_label(key: str) -> str:
    """How a key is shown: ``Ctrl+Z``, ``→``, ``Esc``."""
    arrows = {"ArrowRight": "→", "ArrowLeft": "←", "ArrowUp": "↑", "ArrowDown": "↓"}
    shown = []
    for part in _parts(key):
        if part in arrows:
            shown.append(arrows[part])
        elif len(part) == 1:
            shown.append(part.upper())
        elif part == "Escape":
            shown.append("Esc")
        else:
            shown.append(part)
    return "+".join(shown)


def validate_keymap(
    keymap: Mapping[str, Any], *, blame: Collection[str] = ()
) -> dict[str, tuple[str, ...]]:
    """A whole keymap (every action, or the ones given on top of the defaults): each action's
    keys normalised; refused with the action named for an unknown action, a bad or reserved
    key, too many keys, or a key two actions share (naming both; the message and its field go
    to the action in ``blame``, the one just changed, when one of the two is)."""
    if not isinstance(keymap, Mapping):
        raise PreferenceInvalid("The keymap must map action names to keys.", field="keymap")
    unknown = [k for k in keymap if k not in ACTION_BY_NAME]
    if unknown:
        raise PreferenceInvalid(
            f"The keymap has no action {unknown[0]!r}; the actions are "
            f"{', '.join(ACTION_BY_NAME)}.",
            field="keymap",
        )
    out: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for action in ACTIONS:
        raw = keymap.get(action.name, action.keys)
        where = f"keymap.{action.name}"
        if not isinstance(raw, list | tuple) or not all(isinstance(k, str) for k in raw):
            raise PreferenceInvalid(
                f"{action.label}: the keys must be a list of key names.", field=where
            )
        keys: list[str] = []
        for written in raw:
            try:
                key = normalize_key(written)
            except Invalid as bad:
                raise PreferenceInvalid(f"{action.label}: {bad.message}", field=where) from None
            if key in RESERVED_KEYS:
                raise PreferenceInvalid(
                    f"{action.label}: {key_label(key)} cannot be bound ({RESERVED_KEYS[key]}).",
                    field=where,
                )
            if key not in keys:
                keys.append(key)
        if len(keys) > MAX_KEYS_PER_ACTION:
            raise PreferenceInvalid(
                f"{action.label}: at most {MAX_KEYS_PER_ACTION} keys.", field=where
            )
        for key in keys:
            if key in owner:
                new, old = action, ACTION_BY_NAME[owner[key]]
                if old.name in blame and new.name not in blame:
                    new, old = old, new
                raise PreferenceInvalid(
                    f"{key_label(key)} is already bound to “{old.label}”; it cannot also "
                    f"be bound to “{new.label}”. Change one of them.",
                    field=f"keymap.{new.name}",
                )
            owner[key] = action.name
        out[action.name] = tuple(keys)
    return out


def keymap_from_stored(stored: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The keymap of stored values: the stored actions as they are, an action not stored
    (added since) with those of its default keys no stored action has taken."""
    taken = {k for name, keys in stored.items() if name in ACTION_BY_NAME for k in keys}
    merged: dict[str, Any] = {}
    for action in ACTIONS:
        if action.name in stored:
            merged[action.name] = list(stored[action.name])
        else:
            merged[action.name] = [k for k in action.keys if k not in taken]
    return validate_keymap(merged)


# --- the other preferences -------------------------------------------------------------------

THUMBNAIL_SIZES: dict[str, str] = {"small": "8rem", "medium": "10.5rem", "large": "15rem"}
DEFAULT_THUMBNAIL_SIZE = "medium"
DEFAULT_AUTOLABEL: dict[str, float] = {"conf": 0.25, "iou": 0.7}
AUTOLABEL_NAMES = {"conf": "Minimum confidence", "iou": "NMS IoU threshold"}


def _number(value: Any, where: str, label: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = f", not {value!r}" if isinstance(value, str) and len(value) < 40 else ""
        raise PreferenceInvalid(f"{label} must be a number{shown}.", field=where)
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise PreferenceInvalid(f"{label} must lie between {low:g} and {high:g}.", field=where)
    return number


def validate_split_ratios(ratios: Any) -> dict[str, float]:
    """train, val and test, each in [0, 1], adding up to 1 (the project rule)."""
    if not isinstance(ratios, Mapping):
        raise PreferenceInvalid(
            "The split ratios must give train, val and test.", field="split_ratios"
        )
    extra = [k for k in ratios if k not in SPLITS]
    missing = [s for s in SPLITS if s not in ratios]
    if extra or missing:
        raise PreferenceInvalid(
            "The split ratios must give train, val and test"
            + (f" (not {extra[0]!r})." if extra else f" ({missing[0]} is missing)."),
            field="split_ratios",
        )
    out = {
        s: _number(ratios[s], f"split_ratios.{s}", f"The {s} ratio", low=0, high=1) for s in SPLITS
    }
    total = sum(out.values())
    if abs(total - 1) > 1e-6:
        raise PreferenceInvalid(
            f"The split ratios must add up to 1 (they add up to {total:.3f}).",
            field="split_ratios",
        )
    if out["train"] <= 0:
        raise PreferenceInvalid(
            "The train ratio must be above 0: training needs images.", field="split_ratios.train"
        )
    return out


def validate_autolabel(values: Any) -> dict[str, float]:
    """The default confidence and NMS IoU of auto-labelling, each in [0, 1]."""
    if not isinstance(values, Mapping):
        raise PreferenceInvalid(
            "The auto-label thresholds must give conf and iou.", field="autolabel"
        )
    extra = [k for k in values if k not in DEFAULT_AUTOLABEL]
    if extra:
        raise PreferenceInvalid(
            f"The auto-label thresholds are conf and iou, not {extra[0]!r}.", field="autolabel"
        )
    return {
        k: _number(values.get(k, default), f"autolabel.{k}", AUTOLABEL_NAMES[k], low=0, high=1)
        for k, default in DEFAULT_AUTOLABEL.items()
    }


def validate_thumbnail_size(value: Any) -> str:
    """One of ``THUMBNAIL_SIZES``."""
    if not isinstance(value, str) or value.strip().lower() not in THUMBNAIL_SIZES:
        raise PreferenceInvalid(
            f"The thumbnail size must be one of {', '.join(THUMBNAIL_SIZES)}.",
            field="thumbnail_size",
        )
    return value.strip().lower()


# --- the whole set ---------------------------------------------------------------------------


def _default_keymap() -> dict[str, tuple[str, ...]]:
    return dict(DEFAULT_KEYMAP)


@dataclass(frozen=True)
class Preferences:
    """Every preference, validated."""

    keymap: dict[str, tuple[str, ...]] = field(default_factory=_default_keymap)
    split_ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    autolabel: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_AUTOLABEL))
    thumbnail_size: str = DEFAULT_THUMBNAIL_SIZE

    @property
    def thumbnail_css(self) -> str:
        """The tile width the grid's ``--tile-size`` gets."""
        return THUMBNAIL_SIZES[self.thumbnail_size]

    def to_dict(self) -> dict[str, Any]:
        """The JSON (and YAML) form: every key, in a stable order."""
        return {
            "keymap": {name: list(keys) for name, keys in self.keymap.items()},
            "split_ratios": dict(self.split_ratios),
            "autolabel": dict(self.autolabel),
            "thumbnail_size": self.thumbnail_size,
        }


KEYS = ("keymap", "split_ratios", "autolabel", "thumbnail_size")
GROUPS = {
    "keymap": "Annotator keys",
    "split_ratios": "Split ratios of new projects",
    "autolabel": "Auto-label thresholds",
    "thumbnail_size": "Image grid",
}


def from_stored(stored: Mapping[str, Any]) -> Preferences:
    """The preferences of the stored values, defaults for the rest. A stored value that no
    longer passes (a rule tightened since) gives way to its default rather than breaking
    every page."""
    values: dict[str, Any] = {}
    for key, check in (
        ("keymap", lambda v: keymap_from_stored(v)),
        ("split_ratios", validate_split_ratios),
        ("autolabel", validate_autolabel),
        ("thumbnail_size", validate_thumbnail_size),
    ):
        if key in stored:
            try:
                values[key] = check(stored[key])
            except Invalid:
                continue
    return Preferences(**values)


def apply_patch(current: Preferences, patch: Any) -> Preferences:
    """``current`` with the preferences ``patch`` names replaced, checked whole. A keymap in a
    patch may name some actions only: the others keep their keys (and conflict with the new
    ones like any other). Raises ``PreferenceInvalid`` for an unknown key, a wrong type, a value
    out of range or a key conflict; nothing is half applied."""
    if not isinstance(patch, Mapping):
        raise PreferenceInvalid(
            f"Preferences must be a mapping of {', '.join(KEYS)}.", field="preferences"
        )
    unknown = [k for k in patch if k not in KEYS]
    if unknown:
        raise PreferenceInvalid(
            f"There is no preference {unknown[0]!r}; the preferences are {', '.join(KEYS)}.",
            field="preferences",
        )
    keymap = current.keymap
    if "keymap" in patch:
        given = patch["keymap"]
        if not isinstance(given, Mapping):
            raise PreferenceInvalid("The keymap must map action names to keys.", field="keymap")
        blame = [k for k, v in given.items() if list(current.keymap.get(k, ())) != _as_list(v)]
        keymap = validate_keymap(
            {**{k: list(v) for k, v in current.keymap.items()}, **given}, blame=blame
        )
    return Preferences(
        keymap=keymap,
        split_ratios=(
            validate_split_ratios(patch["split_ratios"])
            if "split_ratios" in patch
            else current.split_ratios
        ),
        autolabel=(
            validate_autolabel(_merged(current.autolabel, patch["autolabel"]))
            if "autolabel" in patch
            else current.autolabel
        ),
        thumbnail_size=(
            validate_thumbnail_size(patch["thumbnail_size"])
            if "thumbnail_size" in patch
            else current.thumbnail_size
        ),
    )


def _as_list(value: Any) -> Any:
    return (
        [value]
        if isinstance(value, str)
        else list(value)
        if isinstance(value, list | tuple)
        else value
    )


def _merged(current: Mapping[str, Any], given: Any) -> Any:
    """``given`` on top of ``current`` when both are mappings (a patch may name one field)."""
    return {**current, **given} if isinstance(given, Mapping) else given


def changed(current: Preferences, new: Preferences) -> dict[str, Any]:
    """The top-level keys whose values differ, with the new values (what to store)."""
    old, fresh = current.to_dict(), new.to_dict()
    return {k: fresh[k] for k in KEYS if old[k] != fresh[k]}


def keymap_rows(keymap: Mapping[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """The annotator's table (``static/annotator.js`` reads it from the page): each action
    with its group, help, keys and their labels, in the shortcut list's order."""
    return [
        {
            "action": a.name,
            "group": a.group,
            "label": a.label,
            "help": a.help,
            "keys": list(keymap.get(a.name, ())),
            "labels": [key_label(k) for k in keymap.get(a.name, ())],
        }
        for a in ACTIONS
    ]
