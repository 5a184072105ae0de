"""``StorageStore``: reconcile (``reconcile.py``), recovery from disk (``sync.py``) and missing
images located again."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from app.db.uow import Database
from app.domain.models import ImageInfo
from app.domain.reconcile import ReconcileReport, SyncReport
from app.domain.stores import ProgressCallback, StorageStore
from app.repositories.files import Layout
from app.repositories.images import SqlImageStore


class SqlStorageStore(StorageStore):
    def __init__(
        self, db: Database, layout: Layout, images: SqlImageStore, *, max_upload_bytes: int
    ) -> None:
        self._max_upload_bytes = max_upload_bytes
        self._db = db
        self._layout = layout
        self._images = images

    async def reconcile(
        self,
        *,
        project: str | None = None,
        dry_run: bool = False,
        deep: bool = False,
        exclusive: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ReconcileReport:
        from app.repositories.reconcile import Reconciler

        reconciler = Reconciler(self._db, self._layout)
        return await reconciler.run(
            project=project, dry_run=dry_run, deep=deep, exclusive=exclusive, progress=progress
        )

    async def sync_from_disk(
        self,
        *,
        project: str | None = None,
        dry_run: bool = False,
        prefer_disk: bool = False,
        progress: ProgressCallback | None = None,
    ) -> SyncReport:
        from app.repositories.sync import sync_from_disk

        return await sync_from_disk(
            self._db,
            self._layout,
            project=project,
            dry_run=dry_run,
            prefer_disk=prefer_disk,
            progress=progress,
        )

    async def locate(self, dataset: str, source: Path | IO[bytes] | bytes) -> ImageInfo:
        from app.repositories.reconcile import locate_missing

        return await locate_missing(
            self._db,
            self._layout,
            self._images,
            dataset,
            source,
            max_bytes=self._max_upload_bytes,
        )
