"""Reconcile: what to do where the disk and the database disagree (DESIGN.md "Start-up
reconcile and recovery").

Pure: the rows of one project and a listing of its folder go in, actions come out
(``plan_project``); what the hashing of a changed file means is decided here too
(``judge_image``). The repository around it scans folders, reads rows and carries actions out.

The database wins: a file no row owns goes to ``lost+found/`` (never deleted); a row whose file
is gone is marked missing (kept, with its labels); a file in another split's folder is moved to
where its row says; a label mirror that differs is rewritten from the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

SPLITS = ("train", "val", "test")
MIRROR_FILES = ("data.yaml", "prompts.yaml", "ydc.json")
# How many findings of one kind a report keeps word for word (the counts stay exact).
KEEP_PER_KIND = 200


# Named tuples, not dataclasses: a reconcile builds one per file and compares them by the
# hundred thousand, and tuples are several times cheaper to make and to compare.
class FileStat(NamedTuple):
    size: int
    mtime_ns: int


class ImageRecord(NamedTuple):
    """What the database says about one image and its label mirror."""

    id: int
    split: str
    filename: str
    size: int
    mtime_ns: int
    missing: bool
    sha256: str
    label_size: int | None  # None: no label file should exist
    label_mtime_ns: int | None


@dataclass
class ProjectFiles:
    """What one project folder holds where ydc keeps files (regular files only)."""

    images: dict[str, dict[str, FileStat]] = field(default_factory=dict)  # split -> name -> stat
    labels: dict[str, dict[str, FileStat]] = field(default_factory=dict)  # split -> name -> stat
    thumbs: set[str] = field(default_factory=set)
    # Entries (relative to the project folder) that ydc never writes: reported, left alone.
    unexpected: list[str] = field(default_factory=list)


class Do(StrEnum):
    """What an action does."""

    QUARANTINE = "quarantine"  # move a file no row owns to lost+found/
    MARK_MISSING = "mark_missing"  # the row's file is gone
    MOVE = "move"  # the file lies in another split's folder: move it where the row says
    VERIFY = "verify"  # size/mtime differ (or --deep, or the file is back): hash it
    CHECK_LABEL = "check_label"  # the mirror's size/mtime differ (or --deep): compare contents
    WRITE_LABEL = "write_label"  # rewrite the label mirror from the rows
    DELETE_THUMB = "delete_thumb"  # a cached thumbnail of no image
    REPORT = "report"  # something ydc does not touch


@dataclass(frozen=True)
class Action:
    do: Do
    path: str  # relative to the project folder
    reason: str
    image_id: int | None = None
    target: str | None = None  # MOVE: where the file goes


def image_path(split: str, filename: str) -> str:
    return f"images/{split}/{filename}"


def label_name(filename: str) -> str:
    """``<stem>.txt``, as ``Path(filename).stem`` has it (string work: called per image)."""
    dot = filename.rfind(".")
    stem = filename[:dot] if 0 < dot < len(filename) - 1 else filename
    return stem + ".txt"


def label_path(split: str, filename: str) -> str:
    return f"labels/{split}/{label_name(filename)}"


def plan_project(
    records: Iterable[ImageRecord], files: ProjectFiles, *, deep: bool = False
) -> list[Action]:
    """The actions that make one project's folder agree with its rows.

    Drift is spotted from presence, size and mtime recorded at write time; ``deep`` also asks
    for every image to be hashed and every label mirror to be compared.
    """
    images = {split: files.images.get(split, {}) for split in SPLITS}
    labels = {split: files.labels.get(split, {}) for split in SPLITS}
    rows = list(records)
    if not deep and _agrees(rows, files, images, labels):
        return []
    actions: list[Action] = []
    # File names are unique in a project (stems are), so a name points at one row at most.
    row_split = {row.filename: row.split for row in rows}
    claimed: set[tuple[str, str]] = set()  # (split, name) of image files a row accounts for
    expected_labels: set[tuple[str, str]] = set()
    shas: set[str] = set()

    for row in rows:
        shas.add(row.sha256)
        stat = images[row.split].get(row.filename)
        here = image_path(row.split, row.filename)
        if stat is not None:
            claimed.add((row.split, row.filename))
            if row.missing:
                actions.append(Action(Do.VERIFY, here, "back on disk", row.id))
            elif deep or stat != FileStat(row.size, row.mtime_ns):
                reason = (
                    "deep check"
                    if stat == FileStat(row.size, row.mtime_ns)
                    else ("size or modification time differs from what ydc wrote")
                )
                actions.append(Action(Do.VERIFY, here, reason, row.id))
        else:
            elsewhere = _found_elsewhere(row, images)
            if elsewhere is not None:
                claimed.add((elsewhere, row.filename))
                actions.append(
                    Action(
                        Do.MOVE,
                        image_path(elsewhere, row.filename),
                        f"found in {elsewhere}/, the database says {row.split}",
                        row.id,
                        target=here,
                    )
                )
                if (
                    row.missing
                    or deep
                    or images[elsewhere][row.filename] != FileStat(row.size, row.mtime_ns)
                ):
                    actions.append(Action(Do.VERIFY, here, "moved back", row.id))
            elif not row.missing:
                actions.append(Action(Do.MARK_MISSING, here, "the file is gone", row.id))
        actions.extend(_label_actions(row, labels, expected_labels, deep))

    for split in SPLITS:
        for name in sorted(images[split]):
            if (split, name) in claimed:
                continue
            owner = row_split.get(name)
            reason = (
                f"a second copy: the database has {name} in {owner}/"
                if owner is not None
                else "no image in the database has this file"
            )
            actions.append(Action(Do.QUARANTINE, image_path(split, name), reason))
        for name in sorted(labels[split]):
            if (split, name) not in expected_labels:
                actions.append(
                    Action(
                        Do.QUARANTINE,
                        f"labels/{split}/{name}",
                        f"a label file of no image in {split}/",
                    )
                )
    wanted_thumbs = {f"{sha}.jpg" for sha in shas}
    for name in sorted(files.thumbs - wanted_thumbs):
        actions.append(Action(Do.DELETE_THUMB, f"thumbs/{name}", "a thumbnail of no image"))
    for entry in files.unexpected:
        actions.append(Action(Do.REPORT, entry, "ydc does not use this; left alone"))
    return actions


def _agrees(
    rows: list[ImageRecord],
    files: ProjectFiles,
    images: dict[str, dict[str, FileStat]],
    labels: dict[str, dict[str, FileStat]],
) -> bool:
    """The common case, answered with a few dict comparisons: every file is where its row says
    with the size and mtime recorded, and nothing else is there. When this is true the full
    plan below has nothing to do either."""
    if files.unexpected:
        return False
    want_images: dict[str, dict[str, FileStat]] = {split: {} for split in SPLITS}
    want_labels: dict[str, dict[str, FileStat]] = {split: {} for split in SPLITS}
    shas = set()
    for row in rows:
        if row.missing:
            return False
        want_images[row.split][row.filename] = FileStat(row.size, row.mtime_ns)
        if row.label_size is not None:
            want_labels[row.split][label_name(row.filename)] = FileStat(
                row.label_size, row.label_mtime_ns or 0
            )
        shas.add(row.sha256 + ".jpg")
    return want_images == images and want_labels == labels and files.thumbs <= shas


def _found_elsewhere(row: ImageRecord, images: dict[str, dict[str, FileStat]]) -> str | None:
    """The other split folder holding the row's file; the one whose stat matches first."""
    found = [s for s in SPLITS if s != row.split and row.filename in images[s]]
    recorded = FileStat(row.size, row.mtime_ns)
    found.sort(key=lambda split: images[split][row.filename] != recorded)
    return found[0] if found else None


def _label_actions(
    row: ImageRecord,
    labels: dict[str, dict[str, FileStat]],
    expected_labels: set[tuple[str, str]],
    deep: bool,
) -> list[Action]:
    name = label_name(row.filename)
    path = label_path(row.split, row.filename)
    stat = labels[row.split].get(name)
    # The row's own label file is never a stray, whatever the rows say it should hold.
    expected_labels.add((row.split, name))
    if row.label_size is None:
        if stat is None:
            return []
        # ydc would not write this file (no accepted box, not "no objects"): someone did.
        return [
            Action(Do.QUARANTINE, path, "a label file for an image the database has unlabelled")
        ]
    if stat is None:
        return [Action(Do.WRITE_LABEL, path, "the label file is gone", row.id)]
    if deep or stat != FileStat(row.label_size, row.label_mtime_ns or 0):
        return [Action(Do.CHECK_LABEL, path, "size or modification time differs", row.id)]
    return []


# --- what hashing a changed image means ---------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """A changed image file, read again: its hash and upright size (``None`` if it does not
    decode)."""

    sha256: str
    width: int | None
    height: int | None


class Verdict(StrEnum):
    SAME = "same"  # the bytes the row describes: refresh size/mtime (and clear "missing")
    ADOPT = "adopt"  # new bytes of the same size in pixels: the labels still fit; take them
    REFUSE = "refuse"  # not the row's picture: to lost+found, the row marked missing


def judge_image(
    expected_sha256: str,
    width: int,
    height: int,
    observed: Observed,
    *,
    sha_taken: bool,
) -> tuple[Verdict, str]:
    """What to do with an image file whose bytes may have changed, and why.

    New bytes are adopted only when they decode to the recorded upright size (normalised boxes
    then still mean the same pixels) and no other image of the project has them.
    """
    if observed.sha256 == expected_sha256:
        return Verdict.SAME, "the same bytes"
    if observed.width is None or observed.height is None:
        return Verdict.REFUSE, "its bytes changed and no longer decode as an image"
    if (observed.width, observed.height) != (width, height):
        return (
            Verdict.REFUSE,
            f"its bytes changed to a {observed.width}x{observed.height} picture; the database "
            f"has {width}x{height}, so its boxes would not fit",
        )
    if sha_taken:
        return Verdict.REFUSE, "its bytes changed to those of another image of the project"
    return Verdict.ADOPT, "its bytes changed (same size in pixels): the new bytes were adopted"


# --- reports ------------------------------------------------------------------------------------


class Found(StrEnum):
    """The kinds of finding a reconcile reports."""

    STRAY_IMAGE = "stray_image"
    STRAY_LABEL = "stray_label"
    MISSING_IMAGE = "missing_image"
    FOUND_AGAIN = "found_again"
    MOVED_BACK = "moved_back"
    IMAGE_CHANGED = "image_changed"
    IMAGE_REFUSED = "image_refused"
    STAT_REFRESHED = "stat_refreshed"
    LABEL_REWRITTEN = "label_rewritten"
    MIRROR_REWRITTEN = "mirror_rewritten"
    THUMB_DELETED = "thumb_deleted"
    TEMP_REMOVED = "temp_removed"
    UNKNOWN_FOLDER = "unknown_folder"
    UNEXPECTED_ENTRY = "unexpected_entry"


FOUND_TITLES = {
    Found.STRAY_IMAGE: "image files with no row, moved to lost+found",
    Found.STRAY_LABEL: "label files of no image, moved to lost+found",
    Found.MISSING_IMAGE: "images whose file is gone, marked missing",
    Found.FOUND_AGAIN: "missing images whose file is back",
    Found.MOVED_BACK: "image files moved back to their split",
    Found.IMAGE_CHANGED: "image files changed on disk, new bytes adopted",
    Found.IMAGE_REFUSED: "image files changed on disk, moved to lost+found",
    Found.STAT_REFRESHED: "files touched but unchanged",
    Found.LABEL_REWRITTEN: "label files rewritten from the database",
    Found.MIRROR_REWRITTEN: "data.yaml / prompts.yaml / ydc.json rewritten",
    Found.THUMB_DELETED: "thumbnails of no image deleted",
    Found.TEMP_REMOVED: "stale temporary files removed",
    Found.UNKNOWN_FOLDER: "folders under projects/ no project owns (adopt with sync-from-disk)",
    Found.UNEXPECTED_ENTRY: "entries ydc does not use, left alone",
}


@dataclass(frozen=True)
class Finding:
    kind: Found
    path: str  # relative to the data dir
    detail: str
    project: str | None = None


@dataclass
class ReconcileReport:
    """What a reconcile found and did (or, dry, would do)."""

    dry_run: bool = False
    deep: bool = False
    projects: int = 0
    images: int = 0
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: Found, path: str, detail: str, project: str | None = None) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= KEEP_PER_KIND:
            self.findings.append(Finding(kind, path, detail, project))

    @property
    def drift(self) -> bool:
        """Did the disk and the database disagree anywhere?"""
        return any(self.counts.values())

    def summary(self) -> str:
        if not self.drift:
            return (
                f"disk and database agree: {self.projects} projects, {self.images} images "
                f"({self.seconds:.2f} s)"
            )
        parts = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items()))
        verb = "would change" if self.dry_run else "found"
        return f"{verb}: {parts} ({self.projects} projects, {self.images} images)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "deep": self.deep,
            "projects": self.projects,
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "drift": self.drift,
            "counts": dict(self.counts),
            "findings": [asdict(finding) for finding in self.findings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconcileReport:
        report = cls(
            dry_run=bool(data.get("dry_run")),
            deep=bool(data.get("deep")),
            projects=int(data.get("projects", 0)),
            images=int(data.get("images", 0)),
            seconds=float(data.get("seconds", 0.0)),
            counts=Counter({str(k): int(v) for k, v in data.get("counts", {}).items()}),
        )
        known = {kind.value for kind in Found}
        for item in data.get("findings", []):
            # A report kept by another version of ydc may name kinds this one does not know.
            if item.get("kind") in known:
                report.findings.append(
                    Finding(Found(item["kind"]), item["path"], item["detail"], item.get("project"))
                )
        report.counts = Counter({k: v for k, v in report.counts.items() if k in known})
        return report


# --- sync-from-disk -----------------------------------------------------------------------------


class Outcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SyncEntry:
    """One thing sync-from-disk added, updated or skipped (and why)."""

    project: str
    kind: str  # project, class, prompt, image, label, model
    name: str
    outcome: Outcome
    reason: str = ""


@dataclass
class SyncReport:
    """What sync-from-disk added, updated and skipped, per project and kind."""

    dry_run: bool = False
    prefer_disk: bool = False
    seconds: float = 0.0
    # (project, kind, outcome) -> count; exact even when entries are cut short.
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    entries: list[SyncEntry] = field(default_factory=list)

    def add(self, project: str, kind: str, name: str, outcome: Outcome, reason: str = "") -> None:
        key = (project, kind, str(outcome))
        self.counts[key] += 1
        if self.counts[key] <= KEEP_PER_KIND:
            self.entries.append(SyncEntry(project, kind, name, outcome, reason))

    @property
    def changed(self) -> bool:
        return any(
            count for (_, _, outcome), count in self.counts.items() if outcome != Outcome.SKIPPED
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "prefer_disk": self.prefer_disk,
            "seconds": round(self.seconds, 3),
            "changed": self.changed,
            "counts": [
                {"project": p, "kind": k, "outcome": o, "count": c}
                for (p, k, o), c in sorted(self.counts.items())
            ],
            "entries": [asdict(entry) for entry in self.entries],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncReport:
        report = cls(
            dry_run=bool(data.get("dry_run")),
            prefer_disk=bool(data.get("prefer_disk")),
            seconds=float(data.get("seconds", 0.0)),
        )
        for item in data.get("counts", []):
            report.counts[(item["project"], item["kind"], item["outcome"])] = int(item["count"])
        for item in data.get("entries", []):
            report.entries.append(
                SyncEntry(
                    item["project"],
                    item["kind"],
                    item["name"],
                    Outcome(item["outcome"]),
                    item.get("reason", ""),
                )
            )
        return report
