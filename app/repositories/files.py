"""Where bytes live on disk, and the only code that writes them.

Every new file is written to ``storage/tmp/`` first, fsynced, then linked into place (never
overwriting) or atomically replaced, and its folder fsynced, so a crash leaves either the old
file, the new one, or a stray temp file that reconcile removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.faults import fault_point

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Layout:
    """Paths of the data dir (DESIGN.md "Data on disk")."""

    data_dir: Path

    @property
    def projects(self) -> Path:
        return self.data_dir / "projects"

    @property
    def tmp(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def exports(self) -> Path:
        return self.data_dir / "exports"

    @property
    def imports(self) -> Path:
        """Uploaded dataset zips waiting for their import task."""
        return self.data_dir / "imports"

    def training(self, task_id: int) -> Path:
        """A training task's folder: its dataset snapshot, Ultralytics' run, its log."""
        return self.data_dir / "training" / f"task-{task_id}"

    @property
    def lost_found(self) -> Path:
        return self.data_dir / "lost+found"

    def project(self, name: str) -> Path:
        return self.projects / name

    def image(self, project: str, split: str, filename: str) -> Path:
        return self.projects / project / "images" / split / filename

    def label(self, project: str, split: str, filename: str) -> Path:
        return self.projects / project / "labels" / split / (Path(filename).stem + ".txt")

    def thumb(self, project: str, sha256: str) -> Path:
        return self.projects / project / "thumbs" / f"{sha256}.jpg"

    def model_dir(self, project: str, model: str) -> Path:
        return self.projects / project / "models" / model

    def ensure_base(self) -> None:
        for folder in (self.projects, self.tmp, self.exports, self.lost_found):
            folder.mkdir(parents=True, exist_ok=True)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.data_dir).as_posix()


class TooLarge(ValueError):
    """More bytes than the limit allows."""


@dataclass(frozen=True)
class Staged:
    """Bytes written to a temp file: where, how many, and their sha256."""

    path: Path
    size: int
    sha256: str


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(layout: Layout, suffix: str = "") -> Path:
    layout.tmp.mkdir(parents=True, exist_ok=True)
    return layout.tmp / f"{uuid.uuid4().hex}{suffix}.part"


def stage(
    layout: Layout, source: Path | IO[bytes] | bytes, *, max_bytes: int | None = None
) -> Staged:
    """Copy ``source`` into a fsynced temp file, hashing as it goes (never held whole in memory
    unless it already is). Raises ``TooLarge`` past ``max_bytes`` (the temp file removed)."""
    target = temp_path(layout)
    digest = hashlib.sha256()
    size = 0
    with contextlib.ExitStack() as stack:
        if isinstance(source, bytes):
            handle: IO[bytes] = io.BytesIO(source)
        elif isinstance(source, Path):
            handle = stack.enter_context(open(source, "rb"))
        else:
            handle = source
        try:
            with open(target, "wb") as out:
                while chunk := handle.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                fault_point("after-temp-fsync")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return Staged(target, size, digest.hexdigest())


def place_new(staged: Path, final: Path) -> None:
    """Link a staged file into place without overwriting anything, then drop the temp name.

    Raises ``FileExistsError`` if ``final`` exists (a file no row owns: never clobbered).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    os.link(staged, final)
    staged.unlink()
    fsync_dir(final.parent)


def replace_atomically(staged: Path, final: Path) -> None:
    """Put a staged file in place, replacing what is there (mirror files)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    fsync_dir(final.parent)


def write_staged(layout: Layout, data: bytes) -> Path:
    """Write small contents (a mirror file) to a fsynced temp file."""
    target = temp_path(layout)
    with open(target, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    fault_point("after-temp-fsync")
    return target


def move_file(src: Path, dst: Path) -> None:
    """Move within the data dir (same filesystem), never overwriting."""
    if not src.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise FileExistsError(dst)
    os.rename(src, dst)
    fsync_dir(dst.parent)


def quarantine(layout: Layout, path: Path, reason: str) -> Path:
    """Move a file no row owns into ``lost+found/`` (never deleted) and say why in the manifest."""
    layout.lost_found.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = layout.lost_found / f"{stamp}-{uuid.uuid4().hex[:6]}-{path.name}"
    os.rename(path, target)
    with open(layout.lost_found / "MANIFEST.tsv", "a", encoding="utf-8") as manifest:
        original = path.relative_to(layout.data_dir).as_posix()
        manifest.write(f"{stamp}\t{original}\t{target.name}\t{reason}\n")
    return target


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def remove_tree(layout: Layout, folder: Path) -> None:
    """Delete a folder: first renamed into ``tmp/`` so a crash never leaves half of it in place."""
    if not folder.exists():
        return
    trash = temp_path(layout, "-trash")
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)
