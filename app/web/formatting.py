"""How pages show times and counts: registered once as template globals (``when``, ``iso``,
``plural``), so every page says them the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def when(timestamp: float | None) -> str:
    """A timestamp as people read it (UTC, to the minute)."""
    if timestamp is None:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(timestamp: float | None) -> str:
    """A timestamp for ``<time datetime>``."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 label``, ``2 labels``."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


TEMPLATE_GLOBALS: dict[str, Any] = {"when": when, "iso": iso, "plural": plural}
