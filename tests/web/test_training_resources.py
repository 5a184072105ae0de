"""A training's peak memory on its panel and on its model's card: RAM always, GPU memory when it
trained on one, "no GPU" otherwise; nothing for a model that has no figures (uploaded, or
trained by an older ydc)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.web.htmltree import parse
from tests.web.test_training_pages import (
    PROJECT,
    add_model,
    project,  # noqa: F401 (a fixture)
    running_training,
    stores_of,
)

pytestmark = pytest.mark.usefixtures("project")  # birds, with a labelled image

GPU_RESULT = {
    "model": "birds-gpu",
    "epochs_completed": 3,
    "best_map50": 0.5,
    "duration_s": 12.0,
    "device": "cuda:0",
    "peak_ram_bytes": 2_345_000_000,
    "peak_gpu_bytes": 1_234_000_000,
    "peak_gpu_reserved_bytes": 1_600_000_000,
}
CPU_RESULT = {
    **GPU_RESULT,
    "model": "birds-cpu",
    "device": "cpu",
    "peak_ram_bytes": 812_000_000,
    "peak_gpu_bytes": None,
    "peak_gpu_reserved_bytes": None,
}


async def finished_training(app: FastAPI, tmp_path: Path, result: dict[str, object]) -> int:
    task_id = await running_training(app, epochs=3)
    figures = {k: v for k, v in result.items() if k.startswith("peak_")}
    await add_model(app, tmp_path, str(result["model"]), metrics={"best_map50": 0.5, **figures})
    await stores_of(app).task.finish(task_id, "test-worker", status="succeeded", result=result)
    return task_id


async def test_the_panel_of_a_gpu_training_shows_its_peak_ram_and_gpu_memory(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    task_id = await finished_training(app, tmp_path, GPU_RESULT)
    panel = parse((await client.get(f"/tasks/{task_id}/training-panel")).text)
    line = panel.find("p", class_="training-resources").text()
    assert line == "Peak memory: RAM 2.3 GB · GPU 1.2 GB (1.6 GB reserved)"


async def test_the_panel_of_a_cpu_training_says_no_gpu_was_used(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    task_id = await finished_training(app, tmp_path, CPU_RESULT)
    panel = parse((await client.get(f"/tasks/{task_id}/training-panel")).text)
    line = panel.find("p", class_="training-resources").text()
    assert line == "Peak memory: RAM 812.0 MB · GPU none used"


async def test_the_models_page_shows_each_models_peaks_and_nothing_for_one_without(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await finished_training(app, tmp_path, GPU_RESULT)
    await finished_training(app, tmp_path, CPU_RESULT)
    await add_model(app, tmp_path, "birds-old")  # no figures: trained before they were kept

    page = parse((await client.get(f"/projects/{PROJECT}/models")).text)

    gpu = page.find("article", id="model-birds-gpu")
    assert gpu.find("dd", class_="metric-peak-ram").text() == "2.3 GB"
    assert gpu.find("dd", class_="metric-peak-gpu").text() == "1.2 GB"
    assert gpu.find("dd", class_="metric-peak-gpu").attrs["title"] == "1.6 GB reserved"
    cpu = page.find("article", id="model-birds-cpu")
    assert cpu.find("dd", class_="metric-peak-ram").text() == "812.0 MB"
    assert cpu.find("dd", class_="metric-peak-gpu").text() == "no GPU"
    old = page.find("article", id="model-birds-old")
    assert old.find_all("dd", class_="metric-peak-ram") == []
