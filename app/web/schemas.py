"""JSON shapes of the API (requests ``…Create``/``…Update``, responses ``…Out``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.domain.models import ClassInfo, ClassUsage, DatasetInfo, TaskInfo


class ProjectCreate(BaseModel):
    name: str = Field(description="Letters, digits, - and _; at most 64 characters.")
    classes: list[str] = Field(default_factory=list, description="Class names in YOLO order.")
    description: str = Field("", max_length=2000)


class ClassesUpdate(BaseModel):
    classes: list[str] = Field(description="The full ordered class list.")


class ClassCreate(BaseModel):
    name: str = Field(description="Unique in the project, ignoring case; one line.")
    colour: str | None = Field(
        None, description="``#rrggbb``; a distinct one is picked if left out."
    )


class ClassUpdate(BaseModel):
    """Each field given is applied (rename, recolour, move); the others stay as they are."""

    name: str | None = Field(None, description="The new name (labels keep pointing at the class).")
    colour: str | None = Field(None, description="The new ``#rrggbb`` colour.")
    index: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="The new YOLO index (0-based; past the end means last). Label files of the "
        "images the shift touches are rewritten.",
    )


class ClassMerge(BaseModel):
    into: int = Field(ge=1, le=2**63 - 1, description="The id of the class that takes the labels.")


class ClassUsageOut(BaseModel):
    """Boxes and suggestions of a class, and the images that would be left with no box."""

    labels: int = Field(description="Accepted boxes.")
    suggestions: int = Field(description="Pending suggestions.")
    images_left_empty: int = Field(description="Images whose only accepted boxes are its.")

    @classmethod
    def of(cls, usage: ClassUsage) -> ClassUsageOut:
        return cls(
            labels=usage.labels,
            suggestions=usage.suggestions,
            images_left_empty=usage.images_left_empty,
        )


class ClassOut(BaseModel):
    id: int
    index: int
    name: str
    colour: str
    prompts: list[str]

    @classmethod
    def of(cls, info: ClassInfo) -> ClassOut:
        return cls(
            id=info.id,
            index=info.position,
            name=info.name,
            colour=info.colour,
            prompts=info.prompts,
        )


class ProjectOut(BaseModel):
    name: str
    description: str
    classes: list[ClassOut]
    num_images: dict[str, int]
    created_at: float
    modified_at: float

    @classmethod
    def of(cls, info: DatasetInfo) -> ProjectOut:
        return cls(
            name=info.name,
            description=info.description,
            classes=[ClassOut.of(c) for c in info.class_details],
            num_images=info.num_images,
            created_at=info.created_at,
            modified_at=info.modified_at,
        )


class TaskOut(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    project: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None

    @classmethod
    def of(cls, info: TaskInfo) -> TaskOut:
        return cls(
            id=info.id,
            kind=info.kind,
            status=info.status,
            progress=info.progress,
            message=info.message,
            project=info.dataset,
            result=info.result,
            error=info.error,
            attempts=info.attempts,
            max_attempts=info.max_attempts,
            cancel_requested=info.cancel_requested,
            created_at=info.created_at,
            started_at=info.started_at,
            finished_at=info.finished_at,
            heartbeat_at=info.heartbeat_at,
        )
