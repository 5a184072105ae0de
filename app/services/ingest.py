"""Upload use case: store many files, each judged on its own, and say what became of every one.

Each file is stored (bytes kept unchanged), reported as a duplicate (the same sha256 is already
in the project, or came earlier in the upload: nothing stored), or refused with a reason a person
understands; one bad file never spoils the others. The files go to the image store in chunks
(``ImageStore.save_files``), not one unit of work each. A ``.zip`` is opened as a zip of images
and each member goes the same way. The archive is judged from its central directory before a
single member is inflated: too many members, too many bytes in all, or a member that inflates
more than ``MAX_ZIP_RATIO`` times (a zip bomb) is refused. Members are only read by name through
``zipfile`` (never extracted), and ``zipfile`` never inflates a member beyond the size the
directory declares.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any, BinaryIO

from app.domain.errors import DuplicateImage, Invalid, NotFound
from app.domain.models import ImageInfo, IngestResult
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
# Files handed to the image store at once (a zip's members are opened that many at a time).
SAVE_CHUNK = 100


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
    wrong with a file itself is its result, not an exception. The files go to the image store
    ``SAVE_CHUNK`` at a time (each chunk a few units of work, not one per file).
    """
    if split is not None:
        validate_split(split)
    await stores.dataset.get_classes(project)  # NotFound; cheaper than get() and its counts
    results: list[IngestResult] = []
    with contextlib.ExitStack() as archives:
        entries = iter(_entries(files, max_zip_bytes, archives))
        while chunk := list(itertools.islice(entries, SAVE_CHUNK)):
            results += await _store_chunk(stores, project, split, chunk)
    return results


@dataclass(frozen=True)
class _Upload:
    """A file to store: the name its result reports, the name it is stored under, and its
    bytes: an uploaded file, or a zip's member (opened only when its chunk is stored)."""

    original: str
    filename: str
    source: BinaryIO | tuple[zipfile.ZipFile, zipfile.ZipInfo]


def _entries(
    files: list[tuple[str, BinaryIO]], max_zip_bytes: int, archives: contextlib.ExitStack
) -> Iterator[IngestResult | _Upload]:
    """Every file and zip member to store, in order, or its result when it is refused unread;
    each zip stays open in ``archives`` until its members are stored."""
    for name, handle in files:
        if name.lower().endswith(".zip"):
            yield from _zip_entries(name, handle, max_zip_bytes, archives)
        else:
            yield _Upload(name, name, handle)


def _zip_entries(
    name: str, handle: BinaryIO, max_zip_bytes: int, archives: contextlib.ExitStack
) -> Iterator[IngestResult | _Upload]:
    try:
        archive = archives.enter_context(zipfile.ZipFile(handle))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        yield IngestResult(name, REFUSED, reason="The file is not a zip archive, or damaged.")
        return
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith(SKIPPED_PREFIXES)
    ]
    problem = _archive_problem(members, max_zip_bytes)
    if problem is not None:
        yield IngestResult(name, REFUSED, reason=problem)
        return
    if not members:
        yield IngestResult(name, REFUSED, reason="The zip holds no files.")
        return
    for info in members:
        original = f"{name}/{info.filename}"
        problem = _member_problem(info)
        if problem is not None:
            yield IngestResult(original, REFUSED, reason=problem)
            continue
        filename = PurePosixPath(info.filename.replace("\\", "/")).name
        yield _Upload(original, filename, (archive, info))


async def _store_chunk(
    stores: Stores, project: str, split: str | None, chunk: list[IngestResult | _Upload]
) -> list[IngestResult]:
    """Store a chunk's files with one call of the image store; their results, in order."""
    results: list[IngestResult | None] = []
    sending: list[tuple[int, _Upload, IO[bytes]]] = []
    with contextlib.ExitStack() as members:
        for entry in chunk:
            if isinstance(entry, IngestResult):
                results.append(entry)
                continue
            results.append(None)
            if isinstance(entry.source, tuple):
                archive, info = entry.source
                try:
                    member = members.enter_context(archive.open(info))
                except ZIP_READ_ERRORS as error:
                    results[-1] = IngestResult(entry.original, REFUSED, reason=_unreadable(error))
                    continue
                source: IO[bytes] = io.BufferedReader(_MemberBytes(member))
            else:
                source = entry.source
            sending.append((len(results) - 1, entry, source))
        outcomes = await stores.image.save_files(
            project, split, [(entry.filename, source) for _, entry, source in sending]
        )
    for (index, entry, _), outcome in zip(sending, outcomes, strict=True):
        results[index] = await _result(stores, project, entry.original, outcome)
    return [r for r in results if r is not None]


async def _result(
    stores: Stores, project: str, original: str, outcome: ImageInfo | Invalid
) -> IngestResult:
    if isinstance(outcome, DuplicateImage):
        existing = outcome.existing_filename
        try:
            existing_split: str | None = (await stores.image.get(project, existing)).split
        except NotFound:  # deleted in the meantime
            existing_split = None
        return IngestResult(original, DUPLICATE, existing, existing_split, reason=existing)
    if isinstance(outcome, Invalid):
        return IngestResult(original, REFUSED, reason=outcome.message)
    return IngestResult(original, STORED, outcome.filename, outcome.split)


class _MemberBytes(io.RawIOBase):
    """A zip member as the store reads it: damage found while inflating it (a bad CRC, a
    truncated stream) refuses that member, as ``Invalid``, instead of failing the upload."""

    def __init__(self, member: IO[bytes]) -> None:
        self._member = member

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._member.read(len(view))
        except ZIP_READ_ERRORS as error:
            raise Invalid(_unreadable(error)) from None
        view[: len(data)] = data
        return len(data)


def _unreadable(error: Exception) -> str:
    return f"It cannot be read from the zip ({error})."


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


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
