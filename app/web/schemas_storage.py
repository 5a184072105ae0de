"""JSON shapes of the Storage health API (``app/web/storage_pages.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool

from app.domain.reconcile import FOUND_TITLES, Found, ReconcileReport
from app.services.storage import StartupReconcile
from app.web.schemas import TaskOut

LocateStatus = Literal["restored", "no_match", "not_missing", "refused"]


class FindingOut(BaseModel):
    kind: str = Field(description="What was found: one of the keys of ``counts``.")
    path: str = Field(description="Relative to the data dir.")
    detail: str
    project: str | None


class ReconcileReportOut(BaseModel):
    """What a reconcile found and did."""

    dry_run: bool
    deep: bool = Field(description="Every image hashed and every label file compared.")
    projects: int
    images: int
    seconds: float
    drift: bool = Field(description="Did the disk and the database disagree anywhere?")
    summary: str = Field(description="The line the log got.")
    counts: dict[str, int] = Field(description="Findings per kind (exact).")
    titles: dict[str, str] = Field(description="What each kind in ``counts`` means.")
    findings: list[FindingOut] = Field(
        description="The findings word for word (at most 200 of each kind)."
    )

    @classmethod
    def of(cls, report: ReconcileReport) -> ReconcileReportOut:
        return cls(
            dry_run=report.dry_run,
            deep=report.deep,
            projects=report.projects,
            images=report.images,
            seconds=round(report.seconds, 3),
            drift=report.drift,
            summary=report.summary(),
            counts={str(kind): count for kind, count in report.counts.items()},
            titles={str(kind): FOUND_TITLES[Found(kind)] for kind in report.counts},
            findings=[
                FindingOut(kind=str(f.kind), path=f.path, detail=f.detail, project=f.project)
                for f in report.findings
            ],
        )


class StartupReconcileOut(BaseModel):
    """The reconcile the server ran as it started."""

    finished_at: float
    error: str | None = Field(description="Why it failed (then ``report`` is null).")
    report: ReconcileReportOut | None

    @classmethod
    def of(cls, startup: StartupReconcile) -> StartupReconcileOut:
        report = ReconcileReportOut.of(startup.report) if startup.report else None
        return cls(finished_at=startup.finished_at, error=startup.error, report=report)


class MissingCountOut(BaseModel):
    project: str
    missing: int = Field(description="Images whose file is gone from disk.")


class StorageOut(BaseModel):
    startup: StartupReconcileOut | None = Field(
        description="Null when the server started without one (it always runs one)."
    )
    reconcile_task: TaskOut | None = Field(
        description="The newest reconcile task; its ``result`` is a report like ``startup``'s."
    )
    sync_task: TaskOut | None = Field(description="The newest sync-from-disk task.")
    missing: list[MissingCountOut] = Field(description="Projects with missing images.")


class ReconcileStart(BaseModel):
    # Strict: JSON true or false, as documented (0 or "no" is refused, never read as false).
    deep: StrictBool = Field(
        False, description="Also hash every image and compare every label file (slower)."
    )


class SyncStart(BaseModel):
    prefer_disk: StrictBool = Field(
        False,
        description="Take the labels of the ``.txt`` files even where the database has some.",
    )


class LocateResultOut(BaseModel):
    original_name: str = Field(description="The uploaded file's name.")
    status: LocateStatus = Field(
        description="``restored``: the file is back where its image's row says; ``no_match``: "
        "no missing image has these bytes; ``not_missing``: the image with these bytes has "
        "its file; ``refused``: the file could not be read (empty, too large)."
    )
    filename: str | None = Field(None, description="The image restored.")
    split: str | None = None
    message: str


class LocateTotals(BaseModel):
    restored: int
    no_match: int
    not_missing: int
    refused: int


class LocateOut(BaseModel):
    results: list[LocateResultOut]
    totals: LocateTotals
