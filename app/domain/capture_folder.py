"""Capture from a server folder, pure rules: the session's settings, which files of the folder
are images to take (by extension, any case), in which order, and when a file that appeared
while the folder is watched has finished being written (its size held still between two looks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from app.domain.capture import DEFAULT_NEAR_DUPLICATE_BITS, DRAWN, CaptureSettings
from app.domain.validation import IMAGE_SUFFIXES

# How often a watched folder is looked at again for new files.
WATCH_POLL_S = 2.0
TRUE = ("1", "true", "on", "yes")


@dataclass(frozen=True)
class FolderSettings:
    """A folder capture: the folder (resolved, under the import roots), the near-duplicate
    threshold in bits (0 keeps every image), the split (``None``: drawn per image), whether
    the folder is watched for new files after the first pass, and whether the frames are
    auto-labelled as they arrive."""

    folder: str
    near_duplicate_bits: int = DEFAULT_NEAR_DUPLICATE_BITS
    split: str | None = None
    watch: bool = False
    autolabel: bool = False

    def __post_init__(self) -> None:
        # The same checks as a video's: one rule for the threshold and the split.
        CaptureSettings(near_duplicate_bits=self.near_duplicate_bits, split=self.split)

    @classmethod
    def from_form(
        cls,
        folder: str,
        *,
        near_duplicate_bits: str = "",
        split: str = "",
        watch: str = "",
        autolabel: str = "",
    ) -> FolderSettings:
        """Settings from form text (a checkbox sends ``on`` or nothing); ``Invalid``. The
        folder is taken as typed: the service checks it against the import roots."""
        video = CaptureSettings.from_form(near_duplicate_bits=near_duplicate_bits, split=split)
        return cls(
            folder=folder.strip(),
            near_duplicate_bits=video.near_duplicate_bits,
            split=video.split,
            watch=watch.strip().lower() in TRUE,
            autolabel=autolabel.strip().lower() in TRUE,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "near_duplicate_bits": self.near_duplicate_bits,
            "split": self.split or DRAWN,
            "watch": self.watch,
            "autolabel": self.autolabel,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FolderSettings:
        split = data.get("split")
        return cls(
            folder=str(data.get("folder") or ""),
            near_duplicate_bits=int(data.get("near_duplicate_bits", DEFAULT_NEAR_DUPLICATE_BITS)),
            split=None if split in (None, DRAWN) else split,
            watch=bool(data.get("watch", False)),
            autolabel=bool(data.get("autolabel", False)),
        )

    def describe(self) -> str:
        """The rule in words, for the session's log."""
        skip = (
            f"skip images within {self.near_duplicate_bits} bits of the last kept one"
            if self.near_duplicate_bits
            else "keep every image"
        )
        watch = "; then watch it for new files" if self.watch else ""
        return f"{skip}, into {self.split or 'a drawn split'}{watch}"


def is_image_name(name: str) -> bool:
    """Whether a file's name ends in an image extension ydc stores (any case)."""
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def in_name_order(names: Iterable[str]) -> list[str]:
    """Relative paths (``/``-separated) in the order they are taken: by name, folder by
    folder (``a/z.jpg`` before ``a0.jpg``, as a listing shows them)."""
    return sorted(names, key=lambda name: PurePosixPath(name).parts)


def images_of(sizes: Mapping[str, int], outside: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Of a folder's listing, the image files (relative path → size) and the links out of the
    import roots a capture refuses (any but hidden ones, which are left out like hidden
    files)."""
    images = {rel: size for rel, size in sizes.items() if is_image_name(rel)}
    refused = [
        rel for rel in outside if not any(part.startswith(".") for part in PurePosixPath(rel).parts)
    ]
    return images, refused


def settled(sizes: Mapping[str, int], before: Mapping[str, int]) -> list[str]:
    """The files of a watched folder ready to take: those whose size is the same as at the
    previous look and not zero. A file seen for the first time, still growing or still empty
    is being written: it waits for the next look."""
    return in_name_order(
        name for name, size in sizes.items() if size > 0 and before.get(name) == size
    )
