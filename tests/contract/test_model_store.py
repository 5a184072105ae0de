"""ModelStore contract: weights copied into the project, names unique, one active model per
project."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.errors import AlreadyExists, Invalid, NotFound
from app.domain.models import ModelInfo
from app.domain.stores import Stores
from tests.contract.support import children, files_under, project_dir

WEIGHTS = b"\x80\x02not really a torch pickle, only bytes" * 8


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A small dummy ``.pt`` file outside the data dir."""
    path = tmp_path / "runs" / "best.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(WEIGHTS)
    return path


def models_dir(stores: Stores, project: str) -> Path:
    return project_dir(stores, project) / "models"


async def save(
    stores: Stores, name: str, weights: Path, project: str, **metrics: object
) -> ModelInfo:
    return await stores.model.save(name, weights, "yolov8n.pt", project, 10, dict(metrics))


async def test_saving_a_model_copies_its_weights_into_the_project(
    stores: Stores, project: str, weights: Path
) -> None:
    info = await save(stores, "first", weights, project, best_map50=0.5)

    assert info.name == "first"
    assert info.dataset_name == project
    assert info.base_model == "yolov8n.pt"
    assert info.epochs_completed == 10
    assert info.is_active is False
    assert info.path.read_bytes() == WEIGHTS
    assert info.path.resolve().is_relative_to((models_dir(stores, project) / "first").resolve())
    # Small blocking file I/O is fine in a test; it checks the copy is not a link.
    assert weights.read_bytes() == WEIGHTS  # noqa: ASYNC240
    weights.write_bytes(b"changed later")  # noqa: ASYNC240
    assert info.path.read_bytes() == WEIGHTS


async def test_a_saved_model_keeps_its_metrics(stores: Stores, project: str, weights: Path) -> None:
    epochs = [{"epoch": 1, "map50": 0.3}, {"epoch": 2, "map50": 0.6}]
    await save(stores, "m", weights, project, best_map50=0.6, epochs=epochs)

    info = await stores.model.get("m")

    assert info is not None
    assert info.best_map50 == pytest.approx(0.6)
    assert info.metrics["epochs"] == epochs


async def test_loading_a_model_returns_the_path_of_its_weights(
    stores: Stores, project: str, weights: Path
) -> None:
    await save(stores, "m", weights, project)

    path = await stores.model.load("m")

    assert path.is_file()
    assert path.read_bytes() == WEIGHTS


async def test_loading_an_unknown_model_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound) as caught:
        await stores.model.load("nobody")
    assert isinstance(caught.value, FileNotFoundError)


async def test_saving_a_model_under_a_taken_name_raises_already_exists_and_keeps_the_first(
    stores: Stores, project: str, weights: Path, tmp_path: Path
) -> None:
    first = await save(stores, "m", weights, project, best_map50=0.5)
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")

    with pytest.raises(AlreadyExists) as caught:
        await save(stores, "m", other, project, best_map50=0.9)

    assert isinstance(caught.value, ValueError)
    assert [m.name for m in await stores.model.list()] == ["m"]
    assert (await stores.model.get("m")) == first
    assert (await stores.model.load("m")).read_bytes() == WEIGHTS
    assert children(models_dir(stores, project)) == ["m"]


async def test_a_model_name_is_taken_across_projects(
    stores: Stores, project: str, weights: Path
) -> None:
    await stores.dataset.create("other", ["x"])
    await save(stores, "m", weights, project)

    with pytest.raises(AlreadyExists):
        await save(stores, "m", weights, "other")

    assert [(m.name, m.dataset_name) for m in await stores.model.list()] == [("m", project)]
    assert files_under(models_dir(stores, "other")) == set()


async def test_saving_a_model_from_a_missing_weights_file_raises_not_found(
    stores: Stores, project: str, tmp_path: Path
) -> None:
    with pytest.raises(NotFound):
        await save(stores, "m", tmp_path / "nowhere.pt", project)

    assert await stores.model.list() == []
    assert await stores.model.get("m") is None
    assert files_under(models_dir(stores, project)) == set()


async def test_saving_a_model_for_an_unknown_project_raises_not_found(
    stores: Stores, weights: Path
) -> None:
    with pytest.raises(NotFound):
        await save(stores, "m", weights, "nobody")

    assert await stores.model.list() == []
    assert not project_dir(stores, "nobody").exists()


@pytest.mark.parametrize("name", ["", "../escape", "has space", "a/b"])
async def test_saving_a_model_with_a_bad_name_raises_invalid(
    stores: Stores, project: str, weights: Path, name: str
) -> None:
    with pytest.raises(Invalid):
        await save(stores, name, weights, project)

    assert await stores.model.list() == []
    assert files_under(models_dir(stores, project)) == set()


async def test_listing_models_gives_the_newest_first_optionally_one_project(
    stores: Stores, project: str, weights: Path
) -> None:
    await stores.dataset.create("other", ["x"])
    await save(stores, "one", weights, project)
    await save(stores, "two", weights, "other")
    await save(stores, "three", weights, project)

    assert [m.name for m in await stores.model.list()] == ["three", "two", "one"]
    assert [m.name for m in await stores.model.list(dataset=project)] == ["three", "one"]
    assert [m.name for m in await stores.model.list(dataset="other")] == ["two"]


async def test_getting_an_unknown_model_returns_none(stores: Stores) -> None:
    assert await stores.model.get("nobody") is None


async def test_deleting_a_model_removes_it_and_its_folder(
    stores: Stores, project: str, weights: Path
) -> None:
    info = await save(stores, "m", weights, project)
    await save(stores, "keep", weights, project)

    assert await stores.model.delete("m") is True

    assert await stores.model.get("m") is None
    assert [m.name for m in await stores.model.list()] == ["keep"]
    assert not info.path.exists()
    assert children(models_dir(stores, project)) == ["keep"]
    with pytest.raises(NotFound):
        await stores.model.load("m")


async def test_deleting_the_active_model_leaves_the_project_without_one(
    stores: Stores, project: str, weights: Path
) -> None:
    await save(stores, "m", weights, project)
    await stores.model.set_active("m")

    await stores.model.delete("m")

    assert await stores.model.get_active(dataset=project) is None


async def test_deleting_an_unknown_model_returns_false(stores: Stores) -> None:
    assert await stores.model.delete("nobody") is False


async def test_setting_the_active_model_leaves_exactly_one_active_per_project(
    stores: Stores, project: str, weights: Path
) -> None:
    await stores.dataset.create("other", ["x"])
    for name, owner in [("a", project), ("b", project), ("c", "other")]:
        await save(stores, name, weights, owner)
    await stores.model.set_active("c")

    await stores.model.set_active("a")
    await stores.model.set_active("b")

    active = {m.name for m in await stores.model.list(dataset=project) if m.is_active}
    assert active == {"b"}
    assert (await stores.model.get_active(dataset=project)).name == "b"  # type: ignore[union-attr]
    assert (await stores.model.get_active(dataset="other")).name == "c"  # type: ignore[union-attr]
    assert (await stores.model.get("c")).is_active is True  # type: ignore[union-attr]


async def test_get_active_without_a_project_gives_the_most_recently_activated(
    stores: Stores, project: str, weights: Path
) -> None:
    await stores.dataset.create("other", ["x"])
    await save(stores, "a", weights, project)
    await save(stores, "c", weights, "other")

    await stores.model.set_active("c")
    await stores.model.set_active("a")
    assert (await stores.model.get_active()).name == "a"  # type: ignore[union-attr]

    await stores.model.set_active("c")
    assert (await stores.model.get_active()).name == "c"  # type: ignore[union-attr]


async def test_a_project_without_an_active_model_has_none(
    stores: Stores, project: str, weights: Path
) -> None:
    await save(stores, "a", weights, project)

    assert await stores.model.get_active(dataset=project) is None
    assert await stores.model.get_active() is None


async def test_activating_an_unknown_model_raises_not_found_and_changes_nothing(
    stores: Stores, project: str, weights: Path
) -> None:
    await save(stores, "a", weights, project)
    await stores.model.set_active("a")

    with pytest.raises(NotFound):
        await stores.model.set_active("nobody")

    assert (await stores.model.get_active(dataset=project)).name == "a"  # type: ignore[union-attr]
