"""The system page, the header's indicator and GET /api/v1/system: figures that agree with
/proc/meminfo and os.statvfs, GPUs from nvidia-smi (a recorded answer played by a stand-in
script), and ydc's own processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.services import accounts
from app.services.system import GPU_CACHE_S, SystemMonitor
from tests.web.htmltree import parse

# nvidia-smi's answer on a 2-GPU machine, one board not reporting its utilisation (recorded).
RECORDED_NVIDIA_SMI = """\
0, NVIDIA GeForce RTX 3090, 10240, 24576, 87
1, NVIDIA GeForce RTX 3090, 3, 24576, [N/A]
"""


def meminfo_bytes() -> dict[str, int]:
    found = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            found[name] = int(parts[0]) * 1024
    return found


def fake_nvidia_smi(folder: Path, answer: str, *, exit_code: int = 0) -> Path:
    """A stand-in nvidia-smi printing ``answer``; each call appends a line to ``calls``."""
    script = folder / "nvidia-smi"
    (folder / "answer.csv").write_text(answer, encoding="utf-8")
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{folder}/calls"\ncat "{folder}/answer.csv"\nexit {exit_code}\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


@pytest.fixture
async def with_gpus(app: FastAPI, tmp_path: Path) -> AsyncIterator[Path]:
    """The app's monitor asks the stand-in nvidia-smi; yields the folder of its calls."""
    folder = tmp_path / "gpu"
    folder.mkdir()
    script = fake_nvidia_smi(folder, RECORDED_NVIDIA_SMI)
    saved = app.state.system_monitor
    app.state.system_monitor = SystemMonitor(app.state.settings.data_dir, nvidia_smi=str(script))
    yield folder
    app.state.system_monitor = saved


async def test_the_api_figures_agree_with_proc_meminfo_and_statvfs(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    before = meminfo_bytes()
    statvfs_before = os.statvfs(settings.data_dir)
    response = await client.get("/api/v1/system")
    after = meminfo_bytes()
    statvfs_after = os.statvfs(settings.data_dir)

    assert response.status_code == 200, response.text
    body = response.json()
    memory = body["memory"]
    assert memory["total_bytes"] == before["MemTotal"]
    tolerance = 0.01 * before["MemTotal"]
    used = [before["MemTotal"] - m["MemAvailable"] for m in (before, after)]
    assert min(used) - tolerance <= memory["used_bytes"] <= max(used) + tolerance
    assert memory["used_bytes"] == memory["total_bytes"] - memory["available_bytes"]

    disk = body["disk"]
    assert disk["path"] == str(settings.data_dir)
    free = [s.f_bavail * s.f_frsize for s in (statvfs_before, statvfs_after)]
    assert disk["total_bytes"] == statvfs_before.f_blocks * statvfs_before.f_frsize
    assert min(free) * 0.99 <= disk["free_bytes"] <= max(free) * 1.01
    assert disk["reserve_bytes"] == settings.disk_reserve_mb * 1000**2

    assert 0.0 <= body["cpu"]["share"] <= 1.0
    assert body["cpu"]["cpus"] >= 1
    server = body["processes"][0]
    assert server["role"] == "server" and server["pid"] == os.getpid()
    assert 0 < server["rss_bytes"] <= server["peak_rss_bytes"]


async def test_the_page_shows_ram_and_disk_as_proc_and_statvfs_say(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/system")
    free = os.statvfs(settings.data_dir)
    memory = meminfo_bytes()

    assert response.status_code == 200
    page = parse(response.text)
    nav = [a for a in page.find("nav").find_all("a") if a.attrs.get("href") == "/system"]
    assert nav and nav[0].attrs.get("aria-current") == "page"
    ram_total = page.find("span", class_="sys-ram-total").text()
    assert ram_total == f"{memory['MemTotal'] / 1e9:.1f} GB"
    used_gb = float(page.find("strong", class_="sys-ram-used").text().split()[0])
    assert abs(used_gb * 1e9 - (memory["MemTotal"] - memory["MemAvailable"])) <= (
        0.01 * memory["MemTotal"] + 0.05e9  # the page rounds to 0.1 GB
    )
    free_shown = page.find("strong", class_="sys-disk-free").text()
    value, unit = free_shown.split()
    scale = {"GB": 1e9, "MB": 1e6, "KB": 1e3}[unit]
    free_bytes = free.f_bavail * free.f_frsize
    assert abs(float(value) * scale - free_bytes) <= 0.01 * free_bytes + 0.05 * scale
    assert str(settings.data_dir) in page.find("code", class_="sys-path").text()
    assert (
        "ydc keeps 500.0 MB free (YDC_DISK_RESERVE_MB)"
        in page.find("p", class_="sys-reserve").text()
    )


async def test_the_header_indicator_is_polled_and_its_fragment_is_one_line(
    client: httpx.AsyncClient,
) -> None:
    home = parse((await client.get("/")).text)
    bar = home.find("a", id="sysbar")
    assert bar.attrs["hx-get"] == "/system/indicator"
    assert "every 10s" in bar.attrs["hx-trigger"]

    fragment = await client.get("/system/indicator", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.headers["cache-control"] == "no-store"
    text = parse(fragment.text).text()
    assert text.startswith("CPU ") and " · RAM " in text and " GB" in text
    assert "free" in text and "<html" not in fragment.text.lower()

    whole = await client.get("/system/indicator")  # a browser asking for it: the page
    assert "<html" in whole.text.lower()


async def test_without_nvidia_smi_the_page_says_there_is_no_gpu(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.system_monitor = SystemMonitor(
        app.state.settings.data_dir, nvidia_smi="ydc-test-no-such-nvidia-smi"
    )
    body = (await client.get("/api/v1/system")).json()
    assert body["gpus"] == []
    assert "nvidia-smi is not installed" in body["gpu_note"]
    page = parse((await client.get("/system")).text)
    assert (
        "No NVIDIA GPU: nvidia-smi is not installed." in page.find("section", id="sys-gpu").text()
    )


async def test_two_gpus_from_nvidia_smi_show_with_their_memory_and_utilisation(
    client: httpx.AsyncClient, with_gpus: Path
) -> None:
    body = (await client.get("/api/v1/system")).json()
    page = parse((await client.get("/system")).text)
    bar = parse((await client.get("/system/indicator", headers={"HX-Request": "true"})).text)

    assert [g["name"] for g in body["gpus"]] == ["NVIDIA GeForce RTX 3090"] * 2
    first, second = body["gpus"]
    assert first["memory_used_bytes"] == 10240 * 2**20
    assert first["memory_total_bytes"] == 24576 * 2**20
    assert first["utilisation"] == pytest.approx(0.87)
    assert second["utilisation"] is None
    section = page.find("section", id="sys-gpu")
    assert section.find("h2").text() == "GPUs"
    texts = [div.text() for div in section.find_all("div", class_="sys-gpu")]
    assert "87 % busy" in texts[0] and "memory 10.0 of 24.0 GiB used" in texts[0]
    assert "utilisation not reported" in texts[1]
    assert "GPU0 87 % 10/24 GiB" in bar.text() and "GPU1 ? 0/24 GiB" in bar.text()
    # The three readings within the cache's lifetime asked nvidia-smi once, the columns named.
    calls = (with_gpus / "calls").read_text().splitlines()
    assert len(calls) == 1, calls
    assert calls[0] == (
        "--query-gpu=index,name,memory.used,memory.total,utilization.gpu "
        "--format=csv,noheader,nounits"
    )
    assert GPU_CACHE_S >= 2


async def test_a_failing_nvidia_smi_shows_its_words_not_an_error(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    script = fake_nvidia_smi(
        tmp_path,
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        exit_code=9,
    )
    app.state.system_monitor = SystemMonitor(app.state.settings.data_dir, nvidia_smi=str(script))
    response = await client.get("/system")
    assert response.status_code == 200
    note = parse(response.text).find("section", id="sys-gpu").text()
    assert "nvidia-smi failed: NVIDIA-SMI has failed" in note


async def test_the_page_lists_the_worker_of_a_running_task_with_its_memory(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = app.state.stores
    await stores.dataset.create("birds", ["gull"])
    task = await stores.task.enqueue("export", {}, dataset="birds")

    class Child:  # what the runner keeps of a worker: this test process stands in for it
        task_id = task.id
        pid = os.getpid()

    class Runner:
        children = {"w1": Child()}

    app.state.runner = Runner()
    try:
        body = (await client.get("/api/v1/system")).json()
        page = parse((await client.get("/system")).text)
    finally:
        app.state.runner = None

    worker = body["processes"][1]
    assert worker["task_id"] == task.id and worker["role"] == f"task {task.id}"
    assert worker["rss_bytes"] > 0
    rows = page.find("table", class_="sys-table").find("tbody").find_all("tr")
    assert len(rows) == 2
    assert f"Export #{task.id}" in rows[1].text() and "birds" in rows[1].text()


async def test_with_accounts_the_login_page_has_no_indicator_and_a_viewer_sees_the_system(
    settings: Settings,
) -> None:
    application = create_app(settings.model_copy(update={"accounts": True}))
    async with LifespanManager(application):
        await accounts.add_user(application.state.stores.account, "viv", "viewer", "pw-123456!")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            login = parse((await http.get("/login")).text)
            assert login.find_all("a", id="sysbar") == []  # it would poll into a redirect
            anonymous = await http.get("/api/v1/system")
            assert anonymous.status_code == 401
            http.headers["X-CSRF-Token"] = http.cookies["ydc_csrf"]
            done = await http.post("/login", data={"name": "viv", "password": "pw-123456!"})
            assert done.status_code == 303, done.text
            page = parse((await http.get("/system")).text)
            assert page.find("a", id="sysbar").attrs["hx-get"] == "/system/indicator"
            assert (await http.get("/api/v1/system")).status_code == 200


async def test_the_page_is_whole_for_browsers_and_its_content_for_htmx_which_polls_it(
    client: httpx.AsyncClient,
) -> None:
    whole = await client.get("/system")
    fragment = await client.get("/system", headers={"HX-Request": "true"})

    assert "<html" in whole.text.lower() and "<html" not in fragment.text.lower()
    for response in (whole, fragment):
        assert "HX-Request" in response.headers["vary"]
        assert response.headers["cache-control"] == "no-store"
    content = parse(fragment.text).find("div", id="system")
    assert content.attrs["hx-get"] == "/system" and content.attrs["hx-trigger"] == "every 10s"
    assert content.attrs["hx-swap"] == "outerHTML"
