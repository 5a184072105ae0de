"""The pure rules of a folder capture: its settings from a form, which names are images, the
order files are taken in, and when a file that appeared in a watched folder is ready."""

from __future__ import annotations

import pytest

from app.domain.capture_folder import (
    FolderSettings,
    images_of,
    in_name_order,
    is_image_name,
    settled,
)
from app.domain.errors import Invalid


def test_form_text_becomes_settings_and_round_trips_through_a_dict() -> None:
    chosen = FolderSettings.from_form(
        " /data/in ", near_duplicate_bits="3", split="VAL", watch="on", autolabel="on"
    )
    assert chosen == FolderSettings("/data/in", 3, "val", watch=True, autolabel=True)
    assert FolderSettings.from_dict(chosen.to_dict()) == chosen
    blank = FolderSettings.from_form("/data/in")
    assert (blank.near_duplicate_bits, blank.split, blank.watch, blank.autolabel) == (
        6,
        None,
        False,
        False,
    )
    assert blank.to_dict()["split"] == "drawn"
    assert "watch" in chosen.describe() and "watch" not in blank.describe()


@pytest.mark.parametrize(
    "fields", [{"near_duplicate_bits": "33"}, {"near_duplicate_bits": "x"}, {"split": "dev"}]
)
def test_bad_form_text_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(Invalid):
        FolderSettings.from_form("/data/in", **fields)


def test_images_are_known_by_their_extension_in_any_case() -> None:
    assert all(is_image_name(n) for n in ["a.jpg", "B.JPEG", "c.Png", "d.tif", "e x.webp"])
    assert not any(is_image_name(n) for n in ["notes.txt", "jpg", "a.jpg.part", "movie.mp4"])


def test_files_are_taken_by_name_folder_by_folder() -> None:
    names = ["b.jpg", "a0.jpg", "a/z.jpg", "a/b/c.jpg", "A.jpg"]
    assert in_name_order(names) == ["A.jpg", "a/b/c.jpg", "a/z.jpg", "a0.jpg", "b.jpg"]


def test_a_watched_file_is_ready_once_its_size_holds_still_between_two_looks() -> None:
    before = {"grown.jpg": 100, "still.jpg": 500, "empty.jpg": 0}
    now = {"grown.jpg": 200, "still.jpg": 500, "empty.jpg": 0, "new.jpg": 300}
    assert settled(now, before) == ["still.jpg"]
    assert settled(now, now) == ["grown.jpg", "new.jpg", "still.jpg"]


def test_a_capture_takes_the_image_files_and_refuses_the_links_out_but_hidden_ones() -> None:
    sizes = {"a.jpg": 1, "notes.txt": 2, "sub/B.PNG": 3}
    outside = ["out.jpg", "linked-folder", "sub/.hidden.jpg", ".cache/x.jpg"]
    assert images_of(sizes, outside) == (
        {"a.jpg": 1, "sub/B.PNG": 3},
        ["out.jpg", "linked-folder"],
    )
