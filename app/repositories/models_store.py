"""``ModelStore`` on SQLAlchemy: weights under ``projects/<name>/models/<model>/``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select, update

from app.db.models import Model, Project
from app.db.uow import Database
from app.domain.errors import AlreadyExists, Invalid, NotFound
from app.domain.models import ModelInfo
from app.domain.stores import ModelStore
from app.domain.validation import validate_project_name
from app.repositories.common import now, project_by_name
from app.repositories.files import Layout, place_new, remove_tree, stage, unlink_quietly

LAST = "last.pt"  # a training's last weights, kept beside its best ones (a later resume, a look)


class SqlModelStore(ModelStore):
    def __init__(self, db: Database, layout: Layout) -> None:
        self._db = db
        self._layout = layout

    async def save(
        self,
        name: str,
        weights_path: Path,
        base_model: str,
        dataset_name: str,
        epochs_completed: int,
        metrics: dict,
        *,
        last_weights: Path | None = None,
        task_id: int | None = None,
        trained_on: str | None = None,
    ) -> ModelInfo:
        try:
            validate_project_name(name)
        except Invalid as error:
            raise Invalid(str(error).replace("Project name", "Model name")) from None
        weights_path = Path(weights_path)
        sources = [weights_path] if last_weights is None else [weights_path, Path(last_weights)]
        for source in sources:
            if not source.is_file():
                raise NotFound(f"There is no weights file at {source}.")
        best_name = weights_path.name if weights_path.suffix == ".pt" else "best.pt"
        if last_weights is not None and best_name == LAST:
            best_name = "best.pt"  # the last weights take that name
        staged_all: list[Path] = []
        try:
            for source in sources:
                staged_all.append((await asyncio.to_thread(stage, self._layout, source)).path)
            async with self._db.unit() as uow:
                session = uow.session
                project = await project_by_name(session, dataset_name)
                taken = await session.scalar(
                    select(Model.id).where(func.lower(Model.name) == name.casefold())
                )
                if taken is not None:
                    raise AlreadyExists(f"A model named {name!r} already exists.")
                folder = self._layout.model_dir(project.name, name)
                if folder.exists():
                    raise AlreadyExists(
                        f"A folder for model {name!r} already lies in storage ({folder})."
                    )
                final = folder / best_name
                uow.on_rollback(lambda: remove_tree(self._layout, folder))
                place_new(staged_all[0], final)
                if last_weights is not None:
                    place_new(staged_all[1], folder / LAST)
                best = metrics.get("best_map50")
                row = Model(
                    project_id=project.id,
                    name=name,
                    base_model=base_model,
                    weights_path=self._layout.relative(final),
                    epochs_completed=epochs_completed,
                    metrics=dict(metrics),
                    best_map50=float(best) if best is not None else None,
                    is_active=False,
                    task_id=task_id,
                    trained_on=trained_on,
                    created_at=now(),
                )
                session.add(row)
                await uow.commit()
                return self._info(row, project.name)
        finally:
            for path in staged_all:
                unlink_quietly(path)

    def _info(self, row: Model, project_name: str) -> ModelInfo:
        return ModelInfo(
            name=row.name,
            path=self._layout.data_dir / row.weights_path,
            base_model=row.base_model,
            dataset_name=project_name,
            created_at=row.created_at,
            epochs_completed=row.epochs_completed,
            best_map50=row.best_map50,
            is_active=row.is_active,
            id=row.id,
            metrics=dict(row.metrics or {}),
        )

    async def _row(self, session, name: str) -> tuple[Model, str] | None:  # type: ignore[no-untyped-def]
        found = (
            await session.execute(
                select(Model, Project.name).join(Project).where(Model.name == name)
            )
        ).first()
        return (found[0], found[1]) if found else None

    async def load(self, name: str) -> Path:
        async with self._db.reader() as session:
            found = await self._row(session, name)
        if found is None:
            raise NotFound(f"There is no model named {name!r}.")
        path = self._layout.data_dir / found[0].weights_path
        if not path.is_file():
            raise NotFound(f"The weights of model {name!r} are missing ({path}).")
        return path

    async def list(self, *, dataset: str | None = None) -> list[ModelInfo]:
        async with self._db.reader() as session:
            query = (
                select(Model, Project.name)
                .join(Project)
                .order_by(Model.created_at.desc(), Model.id.desc())
            )
            if dataset is not None:
                project = await project_by_name(session, dataset)
                query = query.where(Model.project_id == project.id)
            rows = (await session.execute(query)).all()
        return [self._info(row, pname) for row, pname in rows]

    async def get(self, name: str) -> ModelInfo | None:
        async with self._db.reader() as session:
            found = await self._row(session, name)
        return self._info(*found) if found else None

    async def delete(self, name: str) -> bool:
        async with self._db.unit() as uow:
            found = await self._row(uow.session, name)
            if found is None:
                return False
            row, project_name = found
            folder = self._layout.model_dir(project_name, row.name)
            await uow.session.delete(row)
            uow.after_commit(lambda: remove_tree(self._layout, folder))
            await uow.commit()
        return True

    async def set_active(self, name: str) -> None:
        async with self._db.unit() as uow:
            found = await self._row(uow.session, name)
            if found is None:
                raise NotFound(f"There is no model named {name!r}.")
            row = found[0]
            # Deactivate first: the partial unique index allows one active model per project.
            await uow.session.execute(
                update(Model)
                .where(Model.project_id == row.project_id, Model.id != row.id)
                .values(is_active=False)
                .execution_options(synchronize_session="fetch")
            )
            row.is_active = True
            row.activated_at = now()
            await uow.commit()

    async def get_active(self, *, dataset: str | None = None) -> ModelInfo | None:
        async with self._db.reader() as session:
            query = (
                select(Model, Project.name)
                .join(Project)
                .where(Model.is_active)
                .order_by(Model.activated_at.desc(), Model.id.desc())
                .limit(1)
            )
            if dataset is not None:
                project = await project_by_name(session, dataset)
                query = query.where(Model.project_id == project.id)
            found = (await session.execute(query)).first()
        return self._info(found[0], found[1]) if found else None
