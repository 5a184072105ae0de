"""YOLO-World text prompts, pure rules: reading a class's prompts from the editor (one per line),
checking a project's prompts together, and the flat prompt list a YOLO-World model is set to,
with the class each prompt's detections go to.

A class without prompts is not looked for: a class name is often a poor description ("primary",
"class_3"), so using it must be the user's choice (the editor offers to copy the names in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.domain.errors import Invalid

MAX_PROMPT_CHARS = 200
MAX_PROMPTS_PER_CLASS = 32


def prompt_key(text: str) -> str:
    """Two prompts are the same prompt when they differ only in case and spacing."""
    return " ".join(text.split()).casefold()


def prompt_lines(text: str) -> list[str]:
    """The prompts of one class as the editor sends them: one per line, blank lines dropped,
    runs of spaces collapsed."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def check_prompts(
    class_names: Sequence[str], prompts: Mapping[int, Sequence[str]]
) -> dict[int, list[str]]:
    """The project's prompts by class index, each list cleaned (spacing collapsed, repeats
    within the class dropped). ``Invalid`` for a class index out of range, a prompt too long or
    of several lines, too many prompts for a class, or one prompt given to two classes (whose
    detections could go to only one of them)."""
    owner: dict[str, int] = {}
    cleaned: dict[int, list[str]] = {}
    for index in sorted(prompts):
        if not 0 <= index < len(class_names):
            raise Invalid(
                f"There is no class {index} (the project has {len(class_names)} classes)."
            )
        name = class_names[index]
        kept: list[str] = []
        for raw in prompts[index]:
            if "\n" in raw or "\r" in raw:
                raise Invalid(f"A prompt of {name!r} spans several lines: give one per line.")
            text = " ".join(raw.split())
            if not text:
                continue
            if len(text) > MAX_PROMPT_CHARS:
                raise Invalid(
                    f"A prompt of {name!r} is {len(text)} characters long; at most "
                    f"{MAX_PROMPT_CHARS} are kept by the text encoder."
                )
            key = prompt_key(text)
            if owner.get(key, index) != index:
                raise Invalid(
                    f"The prompt {text!r} is given to both {class_names[owner[key]]!r} and "
                    f"{name!r}: its detections can go to one class only."
                )
            if key not in owner:
                owner[key] = index
                kept.append(text)
        if len(kept) > MAX_PROMPTS_PER_CLASS:
            raise Invalid(
                f"{name!r} has {len(kept)} prompts; at most {MAX_PROMPTS_PER_CLASS} per class."
            )
        cleaned[index] = kept
    return cleaned


def prompt_table(prompts: Mapping[int, Sequence[str]]) -> tuple[list[str], dict[int, int]]:
    """The prompts a YOLO-World model is set to, in class order, and the class index each
    prompt's detections go to (prompt index → class index). Classes without prompts are left
    out."""
    texts: list[str] = []
    classes: dict[int, int] = {}
    for index in sorted(prompts):
        for text in prompts[index]:
            classes[len(texts)] = index
            texts.append(text)
    return texts, classes


__all__ = [
    "MAX_PROMPTS_PER_CLASS",
    "MAX_PROMPT_CHARS",
    "check_prompts",
    "prompt_key",
    "prompt_lines",
    "prompt_table",
]
