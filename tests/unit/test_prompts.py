"""Prompt rules: the editor's lines, a project's prompts checked together, the flat list
YOLO-World is set to with each prompt's class, and one box per object and class."""

from __future__ import annotations

import pytest

from app.domain.autolabel import merge_same_class
from app.domain.errors import Invalid
from app.domain.prompts import (
    MAX_PROMPT_CHARS,
    MAX_PROMPTS_PER_CLASS,
    check_prompts,
    prompt_lines,
    prompt_table,
)

NAMES = ["cat", "dog", "bird"]


def test_the_editor_gives_one_prompt_a_line_without_blank_lines_or_extra_spaces() -> None:
    assert prompt_lines("  a  tabby cat \n\n kitten\r\n   \n") == ["a tabby cat", "kitten"]
    assert prompt_lines("") == []


def test_prompts_are_cleaned_and_repeats_within_a_class_dropped() -> None:
    cleaned = check_prompts(NAMES, {0: ["cat", " Cat ", "a  kitten", ""], 2: []})
    assert cleaned == {0: ["cat", "a kitten"], 2: []}


def test_one_prompt_given_to_two_classes_is_refused_naming_both() -> None:
    with pytest.raises(Invalid, match="'Animal' is given to both 'cat' and 'dog'"):
        check_prompts(NAMES, {0: ["animal"], 1: ["Animal"]})


@pytest.mark.parametrize(
    "prompts",
    [
        {3: ["owl"]},
        {0: ["x" * (MAX_PROMPT_CHARS + 1)]},
        {0: [f"cat {i}" for i in range(MAX_PROMPTS_PER_CLASS + 1)]},
        {0: ["two\nlines"]},
    ],
    ids=["unknown class", "too long", "too many", "two lines"],
)
def test_prompts_out_of_bounds_are_refused(prompts: dict[int, list[str]]) -> None:
    with pytest.raises(Invalid):
        check_prompts(NAMES, prompts)


def test_the_prompt_table_flattens_in_class_order_and_leaves_out_classes_without() -> None:
    texts, classes = prompt_table({2: ["sparrow"], 0: ["cat", "kitten"], 1: []})
    assert texts == ["cat", "kitten", "sparrow"]
    assert classes == {0: 0, 1: 0, 2: 2}


def test_boxes_of_one_class_on_one_object_merge_into_the_most_confident() -> None:
    found = [
        (0, 0.6, 0.5, 0.5, 0.2, 0.2),  # kitten
        (0, 0.9, 0.51, 0.5, 0.2, 0.2),  # cat, same object
        (1, 0.7, 0.5, 0.5, 0.2, 0.2),  # dog, same place: another class stays
        (0, 0.5, 0.1, 0.1, 0.1, 0.1),  # another cat
    ]
    assert merge_same_class(found, 0.7) == [found[1], found[2], found[3]]
