"""``ydc import``: a folder or zip into a new project or merged into one, the report printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import TEST_DATA


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("YDC_DATA_DIR", str(folder))
    return folder


def test_ydc_import_reads_a_folder_into_a_new_project_and_prints_the_report(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", str(TEST_DATA / "roboflow-sharks-tiny-yolo"), "--name", "sharks"])

    assert code == 0
    out = capsys.readouterr().out
    assert "Roboflow YOLO from " in out
    assert "into sharks: imported 10 images, 60 boxes" in out
    assert "17  polygon rows read as their bounding box" in out
    assert (data_dir / "projects" / "sharks" / "data.yaml").is_file()


def test_ydc_import_into_merges_and_a_taken_name_is_refused(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(TEST_DATA / "roboflow-sharks-tiny-yolo"), "--name", "sharks"]) == 0
    capsys.readouterr()

    assert main(["import", str(TEST_DATA / "roboflow-sharks-tiny-coco"), "--name", "sharks"]) == 2
    assert "already exists (use --into to merge)" in capsys.readouterr().out

    code = main(["import", str(TEST_DATA / "roboflow-sharks-tiny-coco"), "--into", "sharks"])

    assert code == 0
    out = capsys.readouterr().out
    assert "COCO JSON from " in out
    assert "classes added" not in out  # fish, primary, shark matched by name


def test_ydc_import_of_something_that_is_no_dataset_exits_2_and_creates_nothing(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("no images here")

    assert main(["import", str(empty)]) == 2

    assert "No images found" in capsys.readouterr().err
    assert not (data_dir / "projects" / "empty").exists()
