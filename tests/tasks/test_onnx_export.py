"""ONNX export of a model that really detects (the ``shapes_model`` fixture), in a worker
process, through the API: the ``.onnx`` lies beside the weights, runs in onnxruntime (in a child
process: the pytest process loads no inference runtime) with the output a YOLO detector has at
the training image size, the weights are left as they were, and it can be downloaded."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from app.config import Settings
from app.domain.stores import Stores
from app.tasks.onnx_export import DEFAULT_IMGSZ, export_imgsz
from tests.shapes import IMGSZ, ShapesModel
from tests.tasks.test_durable_tasks import FINISHED, get_task, serving

# Runs the file in onnxruntime on zeros of the input's shape; prints the shapes as JSON.
RUN_ONNX = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    size = int(sys.argv[2])
    (inp,) = session.get_inputs()
    outputs = session.run(None, {inp.name: np.zeros((1, 3, size, size), np.float32)})
    print(json.dumps({"input": list(inp.shape), "outputs": [list(o.shape) for o in outputs]}))
    """
)


def run_onnx(path: Path, size: int) -> dict[str, list[list[int]] | list[int]]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_ONNX, str(path), str(size)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_model_exported_to_onnx_runs_in_onnxruntime_and_its_weights_are_untouched(
    settings: Settings, stores: Stores, shapes_model: ShapesModel
) -> None:
    await stores.dataset.create("shapes", shapes_model.names)
    info = await stores.model.save(
        "shapes-1", shapes_model.weights, "yolo11n.yaml", "shapes", 40, {"args": {"imgsz": IMGSZ}}
    )
    weights_before = sha256(info.path)
    stat_before = info.path.stat()

    async with serving(settings) as (_, client):
        assert (await client.get("/api/v1/models/shapes-1/onnx")).status_code == 404
        response = await client.post("/api/v1/models/shapes-1/onnx")
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        assert response.json()["kind"] == "export_onnx"
        deadline = time.monotonic() + 60
        while (task := await get_task(client, task_id))["status"] not in FINISHED:
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.1)
        assert task["status"] == "succeeded", task["error"]
        download = await client.get("/api/v1/models/shapes-1/onnx")
        page_download = await client.get("/models/shapes-1/onnx")
        models_page = (await client.get("/projects/shapes/models")).text
        unknown = await client.post("/api/v1/models/nope/onnx")
        unknown_file = await client.get("/api/v1/models/nope/onnx")

    result = task["result"]
    onnx = info.path.parent / "best.onnx"
    assert onnx.is_file()
    assert result["model"] == "shapes-1"
    assert result["onnx"] == onnx.relative_to(settings.data_dir).as_posix()
    assert result["bytes"] == onnx.stat().st_size > 0
    assert result["imgsz"] == IMGSZ
    assert 0 < result["seconds"] < 60
    # Only the weights and the export: no staging folder or copy of the weights left behind.
    assert sorted(p.name for p in info.path.parent.iterdir()) == ["best.onnx", "best.pt"]
    assert sha256(info.path) == weights_before
    assert info.path.stat().st_mtime_ns == stat_before.st_mtime_ns

    assert download.status_code == 200
    assert download.content == onnx.read_bytes()
    assert 'filename="shapes-1.onnx"' in download.headers["content-disposition"]
    assert page_download.content == download.content
    assert 'href="/models/shapes-1/onnx"' in models_page
    assert unknown.status_code == 404
    assert unknown_file.status_code == 404

    # A YOLO detector at 128 px: 4 box values + 3 classes for each of 16² + 8² + 4² anchors.
    shapes = run_onnx(onnx, IMGSZ)
    assert shapes["input"] == [1, 3, IMGSZ, IMGSZ]
    expected_anchors = sum((IMGSZ // stride) ** 2 for stride in (8, 16, 32))
    assert shapes["outputs"] == [[1, 4 + len(shapes_model.names), expected_anchors]]


def test_the_export_size_is_the_training_size_else_ultralytics_default() -> None:
    assert export_imgsz({"args": {"imgsz": 320}}) == 320
    assert export_imgsz({"args": {"imgsz": [256, 320]}}) == [256, 320]
    assert export_imgsz({"args": {"imgsz": "416"}}) == 416
    for metrics in ({}, {"args": None}, {"args": {"imgsz": True}}, {"args": {"imgsz": -1}}):
        assert export_imgsz(metrics) == DEFAULT_IMGSZ == 640
