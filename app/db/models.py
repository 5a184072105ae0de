"""ORM models: the database is the source of truth for every project, class, image, label,
model, capture session and task. Timestamps are seconds since the epoch (floats), as in the
seed dataclasses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # casefold of the name: project folders must not clash on case-insensitive disks.
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    train_ratio: Mapped[float] = mapped_column(Float, default=0.8)
    val_ratio: Mapped[float] = mapped_column(Float, default=0.1)
    test_ratio: Mapped[float] = mapped_column(Float, default=0.1)
    created_at: Mapped[float] = mapped_column(Float)
    modified_at: Mapped[float] = mapped_column(Float)

    classes: Mapped[list[ProjectClass]] = relationship(
        back_populates="project",
        lazy="raise",
        order_by="ProjectClass.position",
        passive_deletes=True,
    )


class ProjectClass(Base):
    """A class with a stable id; ``position`` is its YOLO index."""

    __tablename__ = "project_class"
    __table_args__ = (
        Index("uq_project_class_name", "project_id", "name_key", unique=True),
        Index("ix_project_class_position", "project_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))
    colour: Mapped[str] = mapped_column(String(7))
    prompts: Mapped[list[Any]] = mapped_column(JSON, default=list)

    project: Mapped[Project] = relationship(back_populates="classes", lazy="raise")


class CaptureSession(Base):
    __tablename__ = "capture_session"
    __table_args__ = (Index("ix_capture_session_project", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)


class Image(Base):
    __tablename__ = "image"
    __table_args__ = (
        # Keyset pagination of the grid, per split and over all splits.
        Index("ix_image_project_split_id", "project_id", "split", "id"),
        # Keeps project-wide counts and pages in id order (the band indexes would not).
        Index("ix_image_project_id", "project_id", "id"),
        Index("uq_image_stem", "project_id", "stem_key", unique=True),
        Index("uq_image_sha256", "project_id", "sha256", unique=True),
        Index("ix_image_project_missing", "project_id", "missing"),
        Index("ix_image_session", "session_id"),
        # Near-duplicate lookup by pigeonhole: see app.repositories.imaging.PHASH_BANDS.
        *(Index(f"ix_image_phash_b{i}", "project_id", f"phash_b{i}") for i in range(5)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(8))
    split_pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    filename: Mapped[str] = mapped_column(String(255))
    # casefold of the stem: a.jpg and A.png would share a label file.
    stem_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    phash: Mapped[str | None] = mapped_column(String(16))
    # The 64-bit phash cut into 5 bands of 13/13/13/13/12 bits: two hashes within Hamming
    # distance 4 agree on at least one whole band, so near-duplicates are found by index.
    phash_b0: Mapped[int | None] = mapped_column(Integer)
    phash_b1: Mapped[int | None] = mapped_column(Integer)
    phash_b2: Mapped[int | None] = mapped_column(Integer)
    phash_b3: Mapped[int | None] = mapped_column(Integer)
    phash_b4: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    missing: Mapped[bool] = mapped_column(Boolean, default=False)
    no_objects: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("capture_session.id", ondelete="SET NULL")
    )
    # What the label mirror looked like when ydc last wrote it (None: no file expected).
    label_size: Mapped[int | None] = mapped_column(Integer)
    label_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)


class Model(Base):
    __tablename__ = "model"
    __table_args__ = (
        Index("ix_model_project", "project_id", "created_at"),
        # One active model per project.
        Index(
            "uq_model_active",
            "project_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    base_model: Mapped[str] = mapped_column(String(255))
    weights_path: Mapped[str] = mapped_column(Text)  # relative to the data dir
    epochs_completed: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    best_map50: Mapped[float | None] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[float | None] = mapped_column(Float)
    trained_on: Mapped[str | None] = mapped_column(Text)  # snapshot or version it saw
    created_at: Mapped[float] = mapped_column(Float)
    # The training task that made it (None: uploaded, or found on disk).
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="SET NULL"))


class Label(Base):
    __tablename__ = "label"
    __table_args__ = (
        # Covers the grid's "has a box of class C" test without reading label rows.
        Index("ix_label_image_status_class", "image_id", "status", "class_id"),
        Index("ix_label_class", "class_id"),
        Index("ix_label_model", "model_id"),
        # The per-annotator progress view counts by actor and day.
        Index("ix_label_created_by", "created_by", "created_at"),
        Index("ix_label_updated_by", "updated_by", "updated_at"),
        Index("ix_label_reviewed_by", "reviewed_by", "reviewed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(ForeignKey("project_class.id", ondelete="CASCADE"))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("model.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # Who (an account's name, kept when the account goes; null without accounts or for work
    # no person did) created the row, last changed its box or class, accepted or rejected it.
    created_by: Mapped[str | None] = mapped_column(String(64))
    updated_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[float | None] = mapped_column(Float)


class Task(Base):
    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_status_id", "status", "id"),
        Index("ix_task_project_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="SET NULL"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class TrainingEpoch(Base):
    """One epoch of a training task, written as it ends: losses and val metrics."""

    __tablename__ = "training_epoch"
    __table_args__ = (UniqueConstraint("task_id", "epoch", name="uq_training_epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)  # 1-based
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class Account(Base):
    """A person who logs in (with accounts on): a name, a role and a password hash."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class AccountSession(Base):
    """A login: the SHA-256 of the session cookie's token (deleting the row logs out)."""

    __tablename__ = "account_session"
    __table_args__ = (Index("ix_account_session_account", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    """A script's credential: the SHA-256 of a bearer token, shown once when made."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_account", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)


# --- Issue 11, point 4: preferences ----------------------------------------------------------


class Preference(Base):
    """One preference of the instance, by its top-level name (``keymap``, ``split_ratios``,
    ``autolabel``, ``thumbnail_size``): a JSON value checked by ``app.domain.preferences``
    before it is written. A name without a row takes its default."""

    __tablename__ = "preference"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)


# --- Issue 11 part 3: notifications of task ends and project webhooks ---------------------------


class TaskEnd(Base):
    """A task's end, numbered in commit order (write transactions take turns): pages ask for
    the ends after the last number they saw."""

    __tablename__ = "task_end"

    id: Mapped[int] = mapped_column(primary_key=True)  # the sequence number
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), unique=True)
    ended_at: Mapped[float] = mapped_column(Float)


class Webhook(Base):
    """A project's webhook: the URL task ends are POSTed to and the secret they are signed with."""

    __tablename__ = "project_webhook"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), unique=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class WebhookDelivery(Base):
    """One task end to POST to its project's webhook: queued with the end, then its attempts."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_task", "task_id"),
        Index("ix_webhook_delivery_project", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2000))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str | None] = mapped_column(Text)  # the JSON the first attempt sent
    next_attempt_at: Mapped[float | None] = mapped_column(Float)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[float | None] = mapped_column(Float)
    last_attempt_at: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)


# --- Issue 12: dataset versions ------------------------------------------------------------------


class DatasetVersion(Base):
    """A frozen dataset made from projects by a recipe; its files live in
    ``storage/versions/<folder>/`` (put in place whole before the row says ``ready``)."""

    __tablename__ = "dataset_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64), unique=True)  # casefolded name
    folder: Mapped[str] = mapped_column(String(64))
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON)
    sources: Mapped[dict[str, Any]] = mapped_column(JSON)  # projects and class-mapping choices
    classes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))  # building, ready, failed
    error: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float)
    ready_at: Mapped[float | None] = mapped_column(Float)
