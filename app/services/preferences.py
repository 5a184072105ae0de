"""Preference use cases: read them (defaults for what was never set), change some, reset,
and the YAML file a person exports and imports.

Every change goes through ``app.domain.preferences.apply_patch``: the patch is merged into
the current values and checked whole before anything is written, so a refused form field or
import file changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import yaml

from app.domain import preferences as rules
from app.domain.preferences import PreferenceInvalid, Preferences
from app.domain.stores import Stores

YAML_HEADER = (
    "# ydc preferences. Import this file on /settings (or PUT it to /api/v1/preferences/yaml);\n"
    "# a name left out keeps its value, and a file with any mistake changes nothing.\n"
)
MAX_YAML_BYTES = 256 * 1024


async def get_preferences(stores: Stores) -> Preferences:
    """The preferences in force: what is stored, defaults for the rest."""
    return rules.from_stored(await stores.preference.get_all())


async def update_preferences(stores: Stores, patch: Any) -> Preferences:
    """Apply ``patch`` (only the names it gives; a keymap may give some actions only), checked
    whole; ``PreferenceInvalid`` leaves everything as it was."""
    current = await get_preferences(stores)
    new = rules.apply_patch(current, patch)
    await stores.preference.put(rules.changed(current, new))
    return new


async def reset_preferences(stores: Stores, names: Collection[str] | None = None) -> Preferences:
    """Back to the defaults (every preference, or the names given)."""
    if names is not None:
        unknown = [n for n in names if n not in rules.KEYS]
        if unknown:
            raise PreferenceInvalid(f"There is no preference {unknown[0]!r}.", field="preferences")
    await stores.preference.reset(names)
    return await get_preferences(stores)


def to_yaml(prefs: Preferences) -> str:
    """The preferences as a YAML document (every name, defaults included)."""
    body = yaml.safe_dump(prefs.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    return YAML_HEADER + body


def parse_yaml(text: str | bytes) -> dict[str, Any]:
    """The mapping a YAML file holds; ``PreferenceInvalid`` for what is not one."""
    if len(text) > MAX_YAML_BYTES:
        raise PreferenceInvalid(
            f"The file is larger than {MAX_YAML_BYTES // 1024} KiB: not a preferences file.",
            field="file",
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PreferenceInvalid("The file is not UTF-8 text.", field="file") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise PreferenceInvalid(f"The file is not valid YAML{line}.", field="file") from None
    if not isinstance(loaded, dict):
        raise PreferenceInvalid(
            "The file must hold a mapping of preferences (keymap, split_ratios, autolabel, "
            "thumbnail_size).",
            field="file",
        )
    return loaded


async def import_yaml(stores: Stores, text: str | bytes) -> Preferences:
    """Apply a YAML file whole: an unknown name, a wrong type, a value out of range or a key
    conflict refuses the file (``PreferenceInvalid``, nothing changed)."""
    patch = parse_yaml(text)
    try:
        return await update_preferences(stores, patch)
    except PreferenceInvalid as refusal:
        raise PreferenceInvalid(
            f"Nothing was imported: {refusal.message}", field=refusal.field
        ) from None


async def default_ratios(stores: Stores) -> dict[str, float]:
    """The split ratios a new project starts with."""
    return dict((await get_preferences(stores)).split_ratios)


async def autolabel_defaults(stores: Stores) -> dict[str, float]:
    """The confidence and IoU the auto-label forms and API start from."""
    return dict((await get_preferences(stores)).autolabel)
