"""The preference rules: key names put in one form, the keymap's conflicts and reserved keys,
the ranges of ratios and thresholds, patches checked whole."""

from __future__ import annotations

import pytest

from app.domain.errors import Invalid
from app.domain.preferences import (
    ACTIONS,
    DEFAULT_KEYMAP,
    PreferenceInvalid,
    Preferences,
    apply_patch,
    changed,
    from_stored,
    key_label,
    normalize_key,
    parse_keys,
    validate_keymap,
)


@pytest.mark.parametrize(
    ("written", "normal", "label"),
    [
        ("K", "k", "K"),
        ("ctrl+Z", "Ctrl+z", "Ctrl+Z"),
        ("Cmd+Shift+z", "Ctrl+Shift+z", "Ctrl+Shift+Z"),
        ("shift+ctrl+Z", "Ctrl+Shift+z", "Ctrl+Shift+Z"),
        ("right", "ArrowRight", "→"),
        ("esc", "Escape", "Esc"),
        ("+", "+", "+"),
        ("Ctrl++", "Ctrl++", "Ctrl++"),
        ("?", "?", "?"),
        ("f2", "F2", "F2"),
    ],
)
def test_a_key_is_put_in_the_form_the_annotator_compares_with(
    written: str, normal: str, label: str
) -> None:
    assert normalize_key(written) == normal
    assert key_label(normal) == label


@pytest.mark.parametrize("written", ["", "Hyper+k", "Shift+1", "kk", "Ctrl+"])
def test_what_no_key_press_can_be_is_refused(written: str) -> None:
    with pytest.raises(Invalid):
        normalize_key(written)


def test_the_keys_of_a_field_are_separated_by_spaces_or_commas() -> None:
    assert parse_keys(" d,  ArrowRight Ctrl++ ") == ["d", "ArrowRight", "Ctrl++"]


def test_the_default_keymap_has_no_conflict_and_every_action() -> None:
    assert validate_keymap(DEFAULT_KEYMAP) == DEFAULT_KEYMAP
    assert {a.name for a in ACTIONS} >= {"next", "previous", "class1", "class9", "undo"}


def test_a_key_two_actions_share_is_refused_naming_both_on_the_changed_one() -> None:
    with pytest.raises(PreferenceInvalid) as refused:
        apply_patch(Preferences(), {"keymap": {"next": ["a"]}})

    assert refused.value.field == "keymap.next"
    assert "Previous image" in refused.value.message
    assert "Next image" in refused.value.message


def test_moving_a_key_from_one_action_to_another_in_one_patch_is_fine() -> None:
    prefs = apply_patch(Preferences(), {"keymap": {"next": ["a"], "previous": ["b"]}})

    assert prefs.keymap["next"] == ("a",)
    assert prefs.keymap["previous"] == ("b",)


@pytest.mark.parametrize("key", ["Ctrl+w", "Space", "F5", "Alt+ArrowLeft"])
def test_a_key_the_browser_or_the_annotator_keeps_is_refused(key: str) -> None:
    with pytest.raises(PreferenceInvalid, match="cannot be bound"):
        apply_patch(Preferences(), {"keymap": {"save": [key]}})


def test_an_unknown_name_or_action_is_refused() -> None:
    with pytest.raises(PreferenceInvalid, match="no preference 'colours'"):
        apply_patch(Preferences(), {"colours": "dark"})
    with pytest.raises(PreferenceInvalid, match="no action 'teleport'"):
        apply_patch(Preferences(), {"keymap": {"teleport": ["t"]}})


@pytest.mark.parametrize(
    "ratios",
    [
        {"train": 0.8, "val": 0.1},
        {"train": 0.8, "val": 0.1, "test": 0.2},
        {"train": 1.2, "val": -0.1, "test": -0.1},
        {"train": 0, "val": 0.5, "test": 0.5},
        {"train": "lots", "val": 0.1, "test": 0.1},
        [0.8, 0.1, 0.1],
    ],
)
def test_ratios_must_give_each_split_in_range_adding_up_to_one(ratios: object) -> None:
    with pytest.raises(PreferenceInvalid):
        apply_patch(Preferences(), {"split_ratios": ratios})


def test_one_threshold_may_be_changed_alone() -> None:
    prefs = apply_patch(Preferences(), {"autolabel": {"conf": 0.4}})

    assert prefs.autolabel == {"conf": 0.4, "iou": 0.7}
    with pytest.raises(PreferenceInvalid, match="between 0 and 1"):
        apply_patch(prefs, {"autolabel": {"iou": 2}})


@pytest.mark.parametrize(
    "patch",
    [
        {"autolabel": {"conf": "0.4"}},  # a YAML or JSON string is not a number
        {"autolabel": {"conf": True}},
        {"keymap": {"next": "k"}},  # keys are a list
        {"thumbnail_size": 3},
    ],
)
def test_a_wrong_type_is_refused(patch: dict[str, object]) -> None:
    with pytest.raises(PreferenceInvalid):
        apply_patch(Preferences(), patch)


def test_only_what_changed_is_stored_and_what_is_stored_comes_back() -> None:
    new = apply_patch(Preferences(), {"thumbnail_size": "Large", "keymap": {"next": ["k"]}})
    stored = changed(Preferences(), new)

    assert set(stored) == {"thumbnail_size", "keymap"}
    assert from_stored(stored) == new


def test_an_action_added_later_gets_its_default_keys_unless_taken() -> None:
    stored = {"keymap": {"next": ["w"]}}  # drawMode's key, and drawMode not stored

    prefs = from_stored({"keymap": {**stored["keymap"]}})

    assert prefs.keymap["next"] == ("w",)
    assert prefs.keymap["drawMode"] == ()
    assert prefs.keymap["previous"] == ("a", "ArrowLeft")


def test_a_stored_value_that_no_longer_passes_gives_way_to_its_default() -> None:
    assert from_stored({"thumbnail_size": "huge"}).thumbnail_size == "medium"
