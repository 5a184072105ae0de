"""Upload use case: store many files, each on its own, and say what became of every one.

Each file is stored (bytes kept unchanged), reported as a duplicate (the same sha256 is already
in the project: nothing stored), or refused with a reason a person understands; one bad file
never spoils the others. A ``.zip`` is opened as a zip of images and each member goes the same
way. The archive is judged from its central directory before a single member is inflated: too
many members, too many bytes in all, or a member that inflates more than ``MAX_ZIP_RATIO``
times (a zip bomb) is refused. Members are only read by name through ``zipfile`` (never
extracted), and ``zipfile`` never inflates a member beyond the size the directory declares.
"""

from __future__ import annotations

import zipfile
import zlib
from collections import Counter
from pathlib import PurePosixPath
from typing import IO, BinaryIO

from app.domain.errors import DuplicateImage, Invalid, NotFound
from app.domain.models import IngestResult
from app.domain.stores import Stores
from app.domain.validation import unsafe_member_path, validate_split

STORED = "stored"
DUPLICATE = "duplicate"
REFUSED = "refused"
OUTCOMES = (STORED, DUPLICATE, REFUSED)

MAX_ZIP_BYTES = 4 * 2**30  # inflated size of all members of one zip, at most
ZIP_UPLOAD_FACTOR = 100  # ... and at most this many single-file upload limits
MAX_ZIP_RATIO = 100  # a member may inflate to at most 100 times its compressed size ...
ZIP_RATIO_FLOOR = 2**20  # ... once it is over 1 MiB (a small member costs nothing, any ratio)
MAX_ZIP_MEMBERS = 100_000
# Stored and deflated are what zip tools write for images; bzip2 and lzma inflate a whole
# compressed chunk at once, so their memory cost could not be bounded from the directory.
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)
# Archive litter that is no file of the user's (macOS resource forks).
SKIPPED_PREFIXES = ("__MACOSX/",)


def zip_byte_limit(max_upload_bytes: int) -> int:
    """How many inflated bytes one zip may hold: 100 single-file limits, at most 4 GiB."""
    return min(MAX_ZIP_BYTES, ZIP_UPLOAD_FACTOR * max_upload_bytes)


def totals(results: list[IngestResult]) -> dict[str, int]:
    """How many files were stored, duplicates and refused."""
    counted = Counter(r.status for r in results)
    return {outcome: counted.get(outcome, 0) for outcome in OUTCOMES}


async def ingest_files(
    stores: Stores,
    project: str,
    files: list[tuple[str, BinaryIO]],
    split: str | None,
    *,
    max_zip_bytes: int = MAX_ZIP_BYTES,
) -> list[IngestResult]:
    """Store every file (a ``.zip``: every image in it) in the project, into ``split`` or, when
    it is ``None``, into the split each image draws; one result per file or zip member, in order.

    Raises ``NotFound`` (project) and ``Invalid`` (split) before anything is stored; everything
    wrong with a file itself is its result, not an exception.
    """
    if split is not None:
        validate_split(split)
    await stores.dataset.get_classes(project)  # NotFound; cheaper than get() and its counts
    results: list[IngestResult] = []
    for name, handle in files:
        if name.lower().endswith(".zip"):
            results.extend(await _ingest_zip(stores, project, name, handle, split, max_zip_bytes))
        else:
            results.append(await _ingest_one(stores, project, name, name, handle, split))
    return results


async def _ingest_one(
    stores: Stores,
    project: str,
    original: str,
    filename: str,
    source: IO[bytes],
    split: str | None,
) -> IngestResult:
    try:
        # ImageStore.save_file: ``split=None`` draws the split (the ABC is being widened to
        # say so; the SQL store already does).
        info = await stores.image.save_file(project, split, filename, source)
    except DuplicateImage as duplicate:
        existing = duplicate.existing_filename
        try:
            existing_split: str | None = (await stores.image.get(project, existing)).split
        except NotFound:  # deleted in the meantime
            existing_split = None
        return IngestResult(original, DUPLICATE, existing, existing_split, reason=existing)
    except NotFound:
        raise  # the project went away: nothing more can be stored
    except Invalid as error:
        return IngestResult(original, REFUSED, reason=error.message)
    return IngestResult(original, STORED, info.filename, info.split)


def _archive_problem(members: list[zipfile.ZipInfo], max_zip_bytes: int) -> str | None:
    """Why the whole archive is refused (from its directory alone), or ``None``."""
    if len(members) > MAX_ZIP_MEMBERS:
        return f"The zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are allowed."
    total = sum(info.file_size for info in members)
    if total > max_zip_bytes:
        return (
            f"The zip would unpack to {_size(total)}; at most {_size(max_zip_bytes)} are "
            "allowed in one zip (is it a zip bomb?)."
        )
    return None


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why one member is refused without reading it, or ``None``."""
    if unsafe_member_path(info.filename):
        return "Its path leaves the archive (absolute, or with '..'); it was not read."
    if info.flag_bits & 0x1:
        return "It is encrypted; ydc cannot read password-protected zips."
    if info.compress_type not in READABLE_METHODS:
        return (
            "It is compressed with a method ydc does not read (only stored or deflated); "
            "zip it again with the usual settings."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > ZIP_RATIO_FLOOR and ratio > MAX_ZIP_RATIO:
        return (
            f"It would inflate {ratio:.0f} times (from {_size(info.compress_size)} to "
            f"{_size(info.file_size)}); at most {MAX_ZIP_RATIO} times is allowed "
            "(is it a zip bomb?)."
        )
    return None


async def _ingest_zip(
    stores: Stores,
    project: str,
    name: str,
    handle: BinaryIO,
    split: str | None,
    max_zip_bytes: int,
) -> list[IngestResult]:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return [IngestResult(name, REFUSED, reason="The file is not a zip archive, or damaged.")]
    with archive:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir() and not info.filename.startswith(SKIPPED_PREFIXES)
        ]
        problem = _archive_problem(members, max_zip_bytes)
        if problem is not None:
            return [IngestResult(name, REFUSED, reason=problem)]
        if not members:
            return [IngestResult(name, REFUSED, reason="The zip holds no files.")]
        results: list[IngestResult] = []
        for info in members:
            original = f"{name}/{info.filename}"
            problem = _member_problem(info)
            if problem is not None:
                results.append(IngestResult(original, REFUSED, reason=problem))
                continue
            filename = PurePosixPath(info.filename.replace("\\", "/")).name
            try:
                with archive.open(info) as member:
                    result = await _ingest_one(stores, project, original, filename, member, split)
            except ZIP_READ_ERRORS as error:
                result = IngestResult(
                    original, REFUSED, reason=f"It cannot be read from the zip ({error})."
                )
            results.append(result)
    return results


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
