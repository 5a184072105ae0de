"""PreferenceStore contract (and the project's split ratios it seeds): what is put comes back
as it was, a put is all or nothing, a reset forgets."""

from __future__ import annotations

import json

import pytest

from app.domain.errors import Invalid, NotFound
from app.domain.stores import Stores


async def test_a_new_store_holds_no_preferences(stores: Stores) -> None:
    assert await stores.preference.get_all() == {}


async def test_put_values_come_back_as_json(stores: Stores) -> None:
    keymap = {"next": ["k", "ArrowRight"], "previous": ["j"]}
    await stores.preference.put({"keymap": keymap, "thumbnail_size": "large"})
    await stores.preference.put({"autolabel": {"conf": 0.4, "iou": 0.5}})

    assert await stores.preference.get_all() == {
        "autolabel": {"conf": 0.4, "iou": 0.5},
        "keymap": keymap,
        "thumbnail_size": "large",
    }


async def test_putting_a_name_again_replaces_its_value(stores: Stores) -> None:
    await stores.preference.put({"thumbnail_size": "large", "autolabel": {"conf": 0.3}})
    await stores.preference.put({"thumbnail_size": "small"})

    assert await stores.preference.get_all() == {
        "thumbnail_size": "small",
        "autolabel": {"conf": 0.3},
    }


async def test_reset_forgets_the_names_given_or_all(stores: Stores) -> None:
    await stores.preference.put({"thumbnail_size": "large", "autolabel": {"conf": 0.3}})
    await stores.preference.reset(["thumbnail_size"])
    assert await stores.preference.get_all() == {"autolabel": {"conf": 0.3}}

    await stores.preference.reset()
    assert await stores.preference.get_all() == {}


async def test_a_put_in_a_unit_of_work_that_is_not_committed_changes_nothing(
    stores: Stores,
) -> None:
    await stores.preference.put({"thumbnail_size": "small"})
    async with stores.unit_of_work():
        await stores.preference.put({"thumbnail_size": "large", "autolabel": {"iou": 0.1}})
    assert await stores.preference.get_all() == {"thumbnail_size": "small"}


async def test_a_project_starts_with_the_default_ratios(stores: Stores, project: str) -> None:
    assert await stores.dataset.get_split_ratios(project) == {
        "train": 0.8,
        "val": 0.1,
        "test": 0.1,
    }


async def test_set_split_ratios_is_kept_and_mirrored_to_ydc_json(
    stores: Stores, project: str
) -> None:
    await stores.dataset.set_split_ratios(project, {"train": 0.6, "val": 0.2, "test": 0.2})

    assert await stores.dataset.get_split_ratios(project) == pytest.approx(
        {"train": 0.6, "val": 0.2, "test": 0.2}
    )
    info = await stores.dataset.get(project)
    assert info is not None
    data = json.loads((info.path / "ydc.json").read_text())
    assert data["split_ratios"] == pytest.approx({"train": 0.6, "val": 0.2, "test": 0.2})


async def test_set_split_ratios_refuses_ratios_not_adding_up_to_one(
    stores: Stores, project: str
) -> None:
    with pytest.raises(Invalid, match="add up to 1"):
        await stores.dataset.set_split_ratios(project, {"train": 0.6, "val": 0.6, "test": 0.1})
    assert (await stores.dataset.get_split_ratios(project))["train"] == pytest.approx(0.8)


async def test_split_ratios_of_an_unknown_project_raise_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.dataset.get_split_ratios("nope")
    with pytest.raises(NotFound):
        await stores.dataset.set_split_ratios("nope", {"train": 1, "val": 0, "test": 0})
