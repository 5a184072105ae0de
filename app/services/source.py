"""The running program's source, offered to every user as the AGPL asks (section 13)."""

from __future__ import annotations

import io
import zipfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PARTS = (
    "app",
    "migrations",
    "templates",
    "static",
    "tests",
    "bench",
    ".ci",
    "pyproject.toml",
    "alembic.ini",
    "Makefile",
    "README.md",
    "LICENSE",
)


@lru_cache(maxsize=1)
def source_zip() -> bytes:
    """A zip of the source files this server runs from (no caches, no data)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for part in SOURCE_PARTS:
            path = ROOT / part
            files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
            for file in files:
                if file.is_file() and "__pycache__" not in file.parts:
                    archive.write(file, f"ydc/{file.relative_to(ROOT).as_posix()}")
    return buffer.getvalue()
