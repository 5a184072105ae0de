"""SQLAlchemy implementations of the store ABCs (the only code that runs SQL or writes under
``storage/``), and the factory that wires them."""

from __future__ import annotations

from app.config import Settings
from app.db.engine import make_engine
from app.db.uow import Database
from app.domain.stores import Stores
from app.repositories.accounts import SqlAccountStore
from app.repositories.datasets import SqlDatasetStore
from app.repositories.files import Layout
from app.repositories.images import SqlImageStore
from app.repositories.labels import SqlLabelStore
from app.repositories.models_store import SqlModelStore
from app.repositories.preferences import SqlPreferenceStore
from app.repositories.sessions import SqlSessionStore
from app.repositories.storage import SqlStorageStore
from app.repositories.tasks import SqlTaskStore
from app.repositories.versions import SqlVersionStore
from app.repositories.webhooks import SqlNotificationStore


def create_stores(settings: Settings) -> Stores:
    """Build the engine and every store for ``settings`` (the database must be migrated)."""
    layout = Layout(settings.data_dir)
    layout.ensure_base()
    db = Database(make_engine(settings.database_url))
    images = SqlImageStore(
        db,
        layout,
        max_upload_bytes=settings.max_upload_bytes,
        max_image_pixels=settings.max_image_pixels,
    )
    labels = SqlLabelStore(db, layout, images)
    return Stores(
        dataset=SqlDatasetStore(db, layout, images, labels),
        image=images,
        label=labels,
        model=SqlModelStore(db, layout),
        session=SqlSessionStore(db),
        task=SqlTaskStore(db),
        storage=SqlStorageStore(db, layout, images, max_upload_bytes=settings.max_upload_bytes),
        account=SqlAccountStore(db),
        preference=SqlPreferenceStore(db),
        notification=SqlNotificationStore(db),
        version=SqlVersionStore(db, layout),
        unit_of_work=db.unit,
        data_dir=settings.data_dir,
        close=db.dispose,
        disk_reserve=settings.disk_reserve_mb * 1000**2,
    )
