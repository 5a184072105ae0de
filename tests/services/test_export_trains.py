"""Acceptance: the exported zip of coco8, unzipped anywhere, passes Ultralytics' dataset check
and trains for one epoch from another working directory.

ydc itself never imports torch: Ultralytics runs in a child process, offline (the settings,
environment and fonts that keep it off the network), with every socket connection and name
lookup refused and reported back, so a new network call fails the test instead of leaking.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from app.domain.stores import Stores
from tests.conftest import TEST_DATA

COCO8 = TEST_DATA / "coco8"

# Run by the child: argv = data.yaml, the Ultralytics home (settings, runs, weights).
CHILD = textwrap.dedent(
    """
    import json, socket, sys
    from pathlib import Path

    attempts = []

    def refuse(name):
        def refused(*args, **kwargs):
            attempts.append(f"{name}{args[1:] if name == 'connect' else args}"[:200])
            raise OSError(f"network refused by the test: {name}")
        return refused

    socket.socket.connect = refuse("connect")
    socket.socket.connect_ex = refuse("connect")
    socket.create_connection = refuse("create_connection")
    socket.getaddrinfo = refuse("getaddrinfo")

    data_yaml, home = Path(sys.argv[1]), Path(sys.argv[2])

    from ultralytics.utils import SETTINGS

    SETTINGS.update(
        {key: False for key in ("sync", "clearml", "comet", "dvc", "mlflow", "raytune",
                                "tensorboard", "wandb")}
        | {"runs_dir": str(home / "runs"), "datasets_dir": str(home / "datasets"),
           "weights_dir": str(home / "weights")}
    )

    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml), autodownload=False)
    assert data["nc"] == 80, data["nc"]
    assert Path(data["train"]).is_dir() and Path(data["val"]).is_dir(), data

    seen = {}

    def on_train_start(trainer):
        seen["train"] = len(trainer.train_loader.dataset)
        seen["val"] = len(trainer.test_loader.dataset)
        for split, loader in (("train", trainer.train_loader), ("val", trainer.test_loader)):
            seen[f"{split}_boxes"] = sum(len(x["cls"]) for x in loader.dataset.labels)

    model = YOLO("yolo11n.yaml")
    model.add_callback("on_train_start", on_train_start)
    model.train(
        data=str(data_yaml), epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
        plots=False, project=str(home / "project"), name="run", exist_ok=True, amp=False,
        val=True, pretrained=False, verbose=False,
    )
    save_dir = Path(model.trainer.save_dir)
    print("RESULT " + json.dumps({
        "nc": data["nc"],
        "names_0": data["names"][0],
        "save_dir": str(save_dir),
        "last_pt": (save_dir / "weights" / "last.pt").is_file(),
        "seen": seen,
        "network": attempts,
    }))
    """
)


def _zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return zip_path


def _boxes(labels: Path) -> int:
    lines = (line for p in labels.glob("*.txt") for line in p.read_text().splitlines())
    return sum(1 for line in lines if line.strip())


def _offline_env(home: Path) -> dict[str, str]:
    config = home / "config"
    fonts = config / "Ultralytics"
    fonts.mkdir(parents=True)
    # Found, not imported: this process stays free of Ultralytics' dependencies.
    spec = importlib.util.find_spec("matplotlib")
    assert spec is not None and spec.origin is not None
    dejavu = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        shutil.copyfile(dejavu, fonts / name)
    (home / "mpl").mkdir()
    return {
        **os.environ,
        "YOLO_CONFIG_DIR": str(config),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "MPLCONFIGDIR": str(home / "mpl"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


async def test_the_exported_coco8_zip_passes_ultralytics_check_and_trains_one_epoch(
    stores: Stores, tmp_path: Path
) -> None:
    # coco8 as its users zip it: coco8.yaml (its `path:` and `download:` keys are ignored).
    source = _zip_folder(COCO8, tmp_path / "coco8.zip")
    info = await stores.dataset.import_zip(source, "coco8")
    assert info.num_images["train"] == 4
    assert info.num_images["val"] == 4
    assert len(info.classes) == 80

    result = await stores.dataset.export("coco8", tmp_path / "exports")
    assert (result.images, result.left_out["unlabelled"], result.left_out["missing"]) == (8, [], [])

    unzipped = tmp_path / "unzipped" / "somewhere else"
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(unzipped)
    home = tmp_path / "ultralytics"
    workdir = tmp_path / "workdir"
    workdir.mkdir()

    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, str((unzipped / "data.yaml").resolve()), str(home)],
        cwd=workdir,
        env=_offline_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = child.stdout + child.stderr
    assert child.returncode == 0, output[-4000:]
    line = next(x for x in child.stdout.splitlines() if x.startswith("RESULT "))
    report = json.loads(line.removeprefix("RESULT "))
    assert report["nc"] == 80
    assert report["names_0"] == "person"
    assert report["last_pt"], output[-4000:]
    assert report["seen"]["train"] == 4
    assert report["seen"]["val"] == 4
    # Every box of the source reached Ultralytics' label cache (13 in train, 17 in val).
    assert report["seen"]["train_boxes"] == _boxes(COCO8 / "labels" / "train")
    assert report["seen"]["val_boxes"] == _boxes(COCO8 / "labels" / "val")
    assert report["network"] == []
    # The run landed where it was told; nothing was written in the working directory.
    assert Path(report["save_dir"]).is_relative_to(home)
    assert list(workdir.iterdir()) == []
