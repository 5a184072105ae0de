"""How pages show times and counts: registered once as template globals (``when``, ``iso``,
``plural``, ``number``, ``file_size``), so every page says them the same way."""

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
    return f"{count:,} {singular if count == 1 else plural_form or singular + 's'}"


def number(count: int) -> str:
    """``12,345``: thousands separated, as every count on a page."""
    return f"{count:,}"


def file_size(size: int) -> str:
    """Bytes as people read them: ``812 bytes``, ``88.4 KB``, ``12.0 MB`` (powers of 1000)."""
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return plural(size, "byte")


# What a person calls each kind of task (the kind itself is a code name).
TASK_TITLES = {
    "export": "Export",
    "import": "Import",
    "rebalance": "Rebalance",
    "reconcile": "Reconcile",
    "sync": "Sync from disk",
    "train": "Training",
    "evaluate": "Evaluation",
    "export_onnx": "ONNX export",
    "try_model": "Model tried",
    "autolabel": "Auto-label",
    "capture_video": "Video capture",
    "capture_folder": "Folder capture",
    "capture_stream": "Stream feed",
}


def task_title(kind: str) -> str:
    return TASK_TITLES.get(kind, kind.replace("_", " ").capitalize())


TEMPLATE_GLOBALS: dict[str, Any] = {
    "task_title": task_title,
    "when": when,
    "iso": iso,
    "plural": plural,
    "number": number,
    "file_size": file_size,
}
