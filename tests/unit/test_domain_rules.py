"""Pure rules: names, boxes, the YOLO text format, the image header check."""

from __future__ import annotations

import pytest

from app.domain.errors import Invalid
from app.domain.models import Annotation
from app.domain.validation import (
    safe_filename,
    validate_annotation,
    validate_class_names,
    validate_project_name,
)
from app.domain.yolo import data_yaml_dict, format_label_lines, parse_label_text


@pytest.mark.parametrize("name", ["a", "cats-2024", "A_b-9", "x" * 64])
def test_good_project_names_are_accepted(name: str) -> None:
    assert validate_project_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("x" * 65, "65 characters"),
        ("a/b", "path"),
        ("a..b", "path"),
        ("a b", "space"),
        ("a\x07b", "control"),
        ("-leading", "start with a letter or digit"),
        ("naïve", "only letters, digits"),
    ],
)
def test_bad_project_names_are_refused_with_the_reason(name: str, fragment: str) -> None:
    with pytest.raises(Invalid, match=fragment):
        validate_project_name(name)


def test_class_names_are_trimmed_and_duplicates_ignoring_case_refused() -> None:
    assert validate_class_names([" cat ", "dog"]) == ["cat", "dog"]
    with pytest.raises(Invalid, match="twice"):
        validate_class_names(["cat", "CAT"])
    with pytest.raises(Invalid, match="line break"):
        validate_class_names(["a\nb"])
    with pytest.raises(Invalid, match="empty"):
        validate_class_names(["  "])


@pytest.mark.parametrize(
    ("original", "safe"),
    [
        ("photo.JPG", "photo.jpg"),
        ("../../etc/passwd.png", "passwd.png"),
        ("C:\\Users\\me\\shot 1.png", "shot 1.png"),
        ("bad\x00name\x1f.jpg", "badname.jpg"),
        ("..png", "image.png"),
    ],
)
def test_upload_names_are_made_safe(original: str, safe: str) -> None:
    assert safe_filename(original) == safe


@pytest.mark.parametrize("stem", ["x" * 400, "漢" * 100, "é" * 300])
def test_long_upload_names_are_shortened_in_bytes_keeping_the_extension(stem: str) -> None:
    name = safe_filename(stem + ".webp")
    # 255 bytes is the disk's limit; room is left for a "-NNNN" suffix and ".txt".
    assert len(name.encode()) <= 200
    assert name.endswith(".webp")
    assert name.startswith(stem[:10])


@pytest.mark.parametrize("original", ["notes.txt", "archive", "script.sh"])
def test_non_image_names_are_refused(original: str) -> None:
    with pytest.raises(Invalid):
        safe_filename(original)


def test_a_box_must_name_an_existing_class_and_lie_inside_the_image() -> None:
    ok = Annotation(1, 0.5, 0.5, 0.2, 0.2)
    validate_annotation(ok, num_classes=2, width=100, height=100)
    with pytest.raises(Invalid, match="out of range"):
        validate_annotation(Annotation(2, 0.5, 0.5, 0.2, 0.2), num_classes=2, width=9, height=9)
    with pytest.raises(Invalid, match="outside"):
        validate_annotation(Annotation(0, 0.95, 0.5, 0.2, 0.2), num_classes=2, width=9, height=9)
    with pytest.raises(Invalid, match="one pixel"):
        validate_annotation(
            Annotation(0, 0.5, 0.5, 0.001, 0.2), num_classes=1, width=100, height=100
        )


def test_label_lines_round_trip_with_six_decimals() -> None:
    text = format_label_lines([(0, 0.5, 0.25, 0.1, 0.2), (3, 0.123456789, 0.5, 0.5, 0.5)])
    assert text == "0 0.500000 0.250000 0.100000 0.200000\n3 0.123457 0.500000 0.500000 0.500000\n"
    parsed = parse_label_text(text)
    assert [(a.class_id, round(a.x, 6)) for a in parsed] == [(0, 0.5), (3, 0.123457)]


def test_polygon_lines_become_their_bounding_box() -> None:
    (ann,) = parse_label_text("2 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6")
    assert ann.class_id == 2
    assert (ann.x, ann.y) == pytest.approx((0.3, 0.4))
    assert (ann.width, ann.height) == pytest.approx((0.4, 0.4))


@pytest.mark.parametrize("line", ["0 0.5 0.5 0.1", "cat 0.5 0.5 0.1 0.1", "0 0.5 x 0.1 0.1"])
def test_malformed_label_lines_are_refused_naming_the_line(line: str) -> None:
    with pytest.raises(Invalid, match="line 2"):
        parse_label_text("0 0.5 0.5 0.1 0.1\n" + line, where="labels/train/a.txt")


def test_data_yaml_has_no_path_key_and_names_as_a_dict() -> None:
    data = data_yaml_dict(["cat", "dog"])
    assert "path" not in data
    assert data["names"] == {0: "cat", 1: "dog"}
    assert data["train"] == "images/train"


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import struct
    import zlib

    from app.repositories.imaging import decode_file

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(Invalid, match="30000x30000"):
        decode_file(bomb, max_pixels=100_000_000)
