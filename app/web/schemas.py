"""JSON shapes of the API (requests ``…Create``/``…Update``, responses ``…Out``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.domain.models import ClassInfo, DatasetInfo, TaskInfo


class ProjectCreate(BaseModel):
    name: str = Field(description="Letters, digits, - and _; at most 64 characters.")
    classes: list[str] = Field(default_factory=list, description="Class names in YOLO order.")
    description: str = Field("", max_length=2000)


class ClassesUpdate(BaseModel):
    classes: list[str] = Field(description="The full ordered class list.")


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
