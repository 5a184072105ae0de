"""Dataset version recipes: checked whole, augmentation drawn from the seed alone, classes of
several projects matched by normalised name with a person's choices on top."""

from __future__ import annotations

import pytest

from app.domain.box_geometry import ResizeMode
from app.domain.errors import Invalid
from app.domain.versions import (
    Augmentation,
    Recipe,
    class_key,
    map_classes,
    plan_augmentation,
    unmatched_classes,
    validate_recipe,
    validate_version_name,
)

FULL = {
    "preprocessing": {"resize": 640, "resize_mode": "fit_long", "tile": 1024, "drop_empty": True},
    "augmentation": {
        "outputs": 3,
        "flip_horizontal": True,
        "rotate90": True,
        "rotation": 10,
        "brightness": 0.25,
        "blur": 1.5,
        "noise": 8,
        "grayscale": 0.2,
    },
    "seed": 42,
}


def test_a_full_recipe_is_read_with_its_defaults_filled_in():
    recipe = validate_recipe(FULL)
    assert recipe.preprocessing.resize == 640
    assert recipe.preprocessing.resize_mode is ResizeMode.FIT_LONG
    assert recipe.preprocessing.tile == 1024
    assert recipe.preprocessing.tile_overlap == 0.2
    assert recipe.preprocessing.tile_min_visible == 0.4
    assert recipe.augmentation.outputs == 3
    assert recipe.augmentation.contrast == 0.0
    assert recipe.seed == 42
    assert recipe.split_mode == "keep"
    assert validate_recipe({}) == Recipe()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"preprocessing": {"resize": 10}}, "between 32 and 8192"),
        ({"preprocessing": {"resize": 640.5}}, "whole number of pixels"),
        ({"preprocessing": {"resize_mode": "crop"}}, "Resize mode must be one of"),
        ({"preprocessing": {"tile": 640, "tile_overlap": 0.95}}, "tile overlap"),
        ({"preprocessing": {"tile_min_visible": 0}}, "tile min visible"),
        ({"preprocessing": {"auto_orient": "yes"}}, "true or false"),
        ({"preprocessing": {"sharpen": True}}, "unknown setting sharpen"),
        ({"augmentation": {"outputs": 11, "flip_horizontal": True}}, "from 0 to 10"),
        ({"augmentation": {"outputs": 2}}, "at least one operation"),
        ({"augmentation": {"outputs": 1, "rotation": 90}}, "between 0 and 45"),
        ({"augmentation": {"outputs": 1, "brightness": "lots"}}, "must be a number"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"split_mode": "shuffle"}, "redraw"),
        ({"split_mode": "redraw", "ratios": {"train": 0.5, "val": 0.1, "test": 0.1}}, "add up"),
        ({"flavour": "x"}, "unknown setting flavour"),
    ],
)
def test_a_bad_recipe_is_refused_with_what_is_wrong(raw, message):
    with pytest.raises(Invalid, match=message):
        validate_recipe(raw)


def test_augmentation_is_a_function_of_seed_image_and_copy_only():
    recipe = validate_recipe(FULL)
    keys = [(f"sha{i}", k) for i in range(20) for k in range(3)]
    forwards = {key: plan_augmentation(recipe, *key) for key in keys}
    backwards = {key: plan_augmentation(recipe, *key) for key in reversed(keys)}
    assert forwards == backwards
    assert len(set(forwards.values())) == len(keys)  # every copy of every image differs
    other_seed = Recipe(recipe.preprocessing, recipe.augmentation, seed=43)
    assert all(plan_augmentation(other_seed, *key) != forwards[key] for key in keys)


def test_augmentation_draws_stay_within_the_recipe_and_use_every_enabled_operation():
    recipe = validate_recipe(FULL)
    steps = [plan_augmentation(recipe, f"image{i}", k) for i in range(200) for k in range(3)]
    assert {s.quarter_turns for s in steps} == {0, 1, 2, 3}
    assert any(s.flip_horizontal for s in steps) and not all(s.flip_horizontal for s in steps)
    assert not any(s.flip_vertical for s in steps)  # not enabled
    assert all(-10 <= s.degrees <= 10 for s in steps)
    assert all(abs(s.brightness) <= 0.25 * 255 for s in steps)
    assert all(s.contrast == 1.0 for s in steps)  # not enabled
    assert all(0 <= s.blur_sigma <= 1.5 and 0 <= s.noise_std <= 8 for s in steps)
    share_grey = sum(s.grayscale for s in steps) / len(steps)
    assert 0.12 < share_grey < 0.28


def test_no_augmentation_is_the_identity():
    step = plan_augmentation(Recipe(augmentation=Augmentation()), "sha", 0)
    assert (step.quarter_turns, step.degrees, step.brightness, step.contrast) == (0, 0.0, 0.0, 1.0)
    assert not (step.flip_horizontal or step.flip_vertical or step.grayscale)


def test_names_differing_in_case_and_spaces_are_one_class():
    assert class_key("Car") == class_key("car ") == class_key("  CAR") == "car"
    assert class_key("traffic  light") == class_key("Traffic Light")
    mapping = map_classes({"a": ["Car", "person"], "b": ["car ", "bike"]})
    assert mapping.names == ["Car", "person", "bike"]
    assert mapping.index_of == {"a": {0: 0, 1: 1}, "b": {0: 0, 1: 2}}
    assert unmatched_classes({"a": ["Car", "person"], "b": ["car ", "bike"]}) == {
        "a": ["person"],
        "b": ["bike"],
    }


def test_choices_merge_rename_and_drop_classes():
    mapping = map_classes(
        {"a": ["Car", "person"], "b": ["automobile", "bike", "tree"]},
        {"b": {"automobile": "car", "bike": "bicycle", "tree": None}},
    )
    assert mapping.names == ["Car", "person", "bicycle"]
    assert mapping.index_of == {"a": {0: 0, 1: 1}, "b": {0: 0, 1: 2, 2: None}}


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"c": {}}, "not combined"),
        ({"a": {"truck": "car"}}, "has no class 'truck'"),
        ({"a": {"Car": "  "}}, "blank"),
        ({"a": {"Car": None}, "b": {"car ": None}}, "at least one class"),
    ],
)
def test_impossible_choices_are_refused(choices, message):
    with pytest.raises(Invalid, match=message):
        map_classes({"a": ["Car"], "b": ["car "]}, choices)


def test_a_merged_class_is_spelled_as_data_yaml_and_the_counts_spell_it():
    mapping = map_classes({"a": ["big  car"], "b": ["Big Car "]})
    assert mapping.names == ["big car"]
    assert mapping.index_of == {"a": {0: 0}, "b": {0: 0}}


def test_a_version_name_must_fit_its_key_once_case_is_folded():
    assert validate_version_name("ß" * 32) == "ß" * 32
    with pytest.raises(Invalid, match="once its case is folded"):
        validate_version_name("ß" * 40)  # 40 characters, 80 folded
