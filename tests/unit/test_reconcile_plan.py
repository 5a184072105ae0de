"""The pure reconcile plan: rows and a folder listing in, actions out (no disk, no database)."""

from __future__ import annotations

from pathlib import Path

from app.domain.reconcile import (
    Action,
    Do,
    FileStat,
    Found,
    ImageRecord,
    Observed,
    Outcome,
    ProjectFiles,
    ReconcileReport,
    SyncReport,
    Verdict,
    judge_image,
    label_name,
    plan_project,
)

STAT = FileStat(1000, 111)
LABEL = FileStat(30, 222)


def record(
    image_id: int = 1,
    filename: str = "a.jpg",
    split: str = "train",
    *,
    missing: bool = False,
    labelled: bool = True,
    sha: str = "s1",
) -> ImageRecord:
    return ImageRecord(
        id=image_id,
        split=split,
        filename=filename,
        size=STAT.size,
        mtime_ns=STAT.mtime_ns,
        missing=missing,
        sha256=sha,
        label_size=LABEL.size if labelled else None,
        label_mtime_ns=LABEL.mtime_ns if labelled else None,
    )


def agreeing(*records: ImageRecord) -> ProjectFiles:
    """The folder exactly as the rows say."""
    files = ProjectFiles()
    for row in records:
        files.images.setdefault(row.split, {})[row.filename] = STAT
        if row.label_size is not None:
            files.labels.setdefault(row.split, {})[row.filename.rsplit(".", 1)[0] + ".txt"] = LABEL
        files.thumbs.add(f"{row.sha256}.jpg")
    return files


def kinds(actions: list[Action]) -> list[tuple[Do, str]]:
    return [(a.do, a.path) for a in actions]


def test_a_folder_that_agrees_with_its_rows_needs_nothing() -> None:
    rows = [record(1, "a.jpg"), record(2, "b.png", "val", labelled=False, sha="s2")]
    assert plan_project(rows, agreeing(*rows)) == []


def test_deep_hashes_every_image_and_compares_every_label_file() -> None:
    rows = [record(1, "a.jpg"), record(2, "b.png", "val", labelled=False, sha="s2")]
    actions = plan_project(rows, agreeing(*rows), deep=True)
    assert sorted(kinds(actions)) == [
        (Do.CHECK_LABEL, "labels/train/a.txt"),
        (Do.VERIFY, "images/train/a.jpg"),
        (Do.VERIFY, "images/val/b.png"),
    ]


def test_a_file_deleted_by_hand_marks_its_row_missing_once() -> None:
    row = record()
    files = agreeing(row)
    del files.images["train"]["a.jpg"]
    assert kinds(plan_project([row], files)) == [(Do.MARK_MISSING, "images/train/a.jpg")]
    # Already marked: nothing more to do.
    assert plan_project([record(missing=True)], files) == []


def test_a_file_back_on_disk_is_hashed_before_its_row_is_trusted_again() -> None:
    row = record(missing=True)
    (action,) = plan_project([row], agreeing(row))
    assert (action.do, action.image_id, action.reason) == (Do.VERIFY, 1, "back on disk")


def test_a_stray_file_goes_to_lost_and_found_with_a_reason() -> None:
    row = record()
    files = agreeing(row)
    files.images["train"]["stray.jpg"] = STAT
    (action,) = plan_project([row], files)
    assert action.do is Do.QUARANTINE
    assert action.path == "images/train/stray.jpg"
    assert "no image in the database" in action.reason


def test_a_file_moved_by_hand_to_another_split_is_moved_back() -> None:
    row = record(split="val")
    files = agreeing(record(split="train"))  # the image lies in train/, its label in train/ too
    actions = plan_project([row], files)
    assert kinds(actions) == [
        (Do.MOVE, "images/train/a.jpg"),
        (Do.WRITE_LABEL, "labels/val/a.txt"),
        (Do.QUARANTINE, "labels/train/a.txt"),
    ]
    assert actions[0].target == "images/val/a.jpg"
    assert actions[0].image_id == 1


def test_of_two_copies_the_one_in_the_rows_split_stays_and_the_other_is_quarantined() -> None:
    row = record(split="val")
    files = agreeing(row)
    files.images["test"] = {"a.jpg": STAT}
    (action,) = plan_project([row], files)
    assert (action.do, action.path) == (Do.QUARANTINE, "images/test/a.jpg")
    assert "second copy" in action.reason


def test_a_moved_file_whose_stat_changed_is_also_verified() -> None:
    row = record(split="val", labelled=False)
    files = ProjectFiles(images={"test": {"a.jpg": FileStat(5, 5)}}, thumbs={"s1.jpg"})
    assert kinds(plan_project([row], files)) == [
        (Do.MOVE, "images/test/a.jpg"),
        (Do.VERIFY, "images/val/a.jpg"),
    ]


def test_a_changed_size_or_mtime_asks_for_a_hash() -> None:
    row = record()
    files = agreeing(row)
    files.images["train"]["a.jpg"] = FileStat(STAT.size, STAT.mtime_ns + 1)
    assert kinds(plan_project([row], files)) == [(Do.VERIFY, "images/train/a.jpg")]


def test_label_mirrors_gone_changed_or_unexpected() -> None:
    gone, edited, unlabelled = (
        record(1, "a.jpg"),
        record(2, "b.jpg", sha="s2"),
        record(3, "c.jpg", labelled=False, sha="s3"),
    )
    files = agreeing(gone, edited, unlabelled)
    del files.labels["train"]["a.txt"]
    files.labels["train"]["b.txt"] = FileStat(31, 999)
    files.labels["train"]["c.txt"] = FileStat(10, 1)
    files.labels["train"]["orphan.txt"] = FileStat(10, 1)
    assert sorted(kinds(plan_project([gone, edited, unlabelled], files))) == [
        (Do.CHECK_LABEL, "labels/train/b.txt"),
        (Do.QUARANTINE, "labels/train/c.txt"),
        (Do.QUARANTINE, "labels/train/orphan.txt"),
        (Do.WRITE_LABEL, "labels/train/a.txt"),
    ]


def test_thumbnails_of_no_image_are_deleted_and_odd_entries_reported() -> None:
    row = record()
    files = agreeing(row)
    files.thumbs.add("gone.jpg")
    files.unexpected.append("notes.md")
    assert kinds(plan_project([row], files)) == [
        (Do.DELETE_THUMB, "thumbs/gone.jpg"),
        (Do.REPORT, "notes.md"),
    ]


def test_a_label_file_is_named_after_the_stem_only() -> None:
    row = record(filename="frame.0001.png")
    files = agreeing(row)
    assert "frame.0001.txt" in files.labels["train"]
    assert plan_project([row], files) == []


def test_judging_a_changed_file() -> None:
    same = judge_image("s1", 64, 48, Observed("s1", None, None), sha_taken=True)
    assert same[0] is Verdict.SAME
    adopt = judge_image("s1", 64, 48, Observed("s2", 64, 48), sha_taken=False)
    assert adopt[0] is Verdict.ADOPT
    resized = judge_image("s1", 64, 48, Observed("s2", 32, 24), sha_taken=False)
    assert resized[0] is Verdict.REFUSE and "32x24" in resized[1]
    broken = judge_image("s1", 64, 48, Observed("s2", None, None), sha_taken=False)
    assert broken[0] is Verdict.REFUSE and "no longer decode" in broken[1]
    twin = judge_image("s1", 64, 48, Observed("s2", 64, 48), sha_taken=True)
    assert twin[0] is Verdict.REFUSE and "another image" in twin[1]


def test_a_report_keeps_exact_counts_and_round_trips_through_json() -> None:
    report = ReconcileReport(dry_run=True, projects=2, images=5)
    assert not report.drift and "agree" in report.summary()
    for index in range(250):
        report.add(Found.STRAY_IMAGE, f"projects/p/images/train/{index}.jpg", "why", "p")
    report.add(Found.MISSING_IMAGE, "projects/p/images/val/x.jpg", "gone", "p")
    assert report.drift
    assert report.counts[Found.STRAY_IMAGE] == 250
    assert len(report.findings) == 201  # the words of the first 200 of a kind are kept
    again = ReconcileReport.from_dict(report.to_dict())
    assert again.counts == report.counts and again.findings == report.findings
    assert "would change" in again.summary()


def test_a_sync_report_counts_and_says_whether_anything_changed() -> None:
    report = SyncReport()
    report.add("p", "image", "a.jpg", Outcome.SKIPPED, "already registered")
    assert not report.changed
    report.add("p", "image", "b.jpg", Outcome.ADDED)
    assert report.changed
    again = SyncReport.from_dict(report.to_dict())
    assert again.counts == report.counts and again.entries == report.entries


def test_label_names_are_the_stems_layout_uses() -> None:
    names = ["a.jpg", "frame.0001.png", ".hidden.jpg", "noext", "trailing.", "Ünï cödé.JPEG"]
    assert [label_name(n) for n in names] == [Path(n).stem + ".txt" for n in names]
