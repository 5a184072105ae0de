"""The system page and the header's indicator in a real browser: the indicator fills itself on
any page (htmx), the System link leads to the page, and with two GPUs (a stand-in nvidia-smi
playing a recorded answer) both appear; screenshots at desktop and phone sizes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.services.system import SystemMonitor
from tests.e2e.support import LiveServer, api, photo, shoot
from tests.web.test_system_page import RECORDED_NVIDIA_SMI, fake_nvidia_smi


@pytest.mark.e2e
def test_the_header_indicator_fills_in_and_leads_to_the_system_page(
    live: LiveServer, page: Page
) -> None:
    page.goto("/")
    bar = page.locator("#sysbar")
    expect(bar).to_contain_text(re.compile(r"CPU \d+\s% · RAM \d+\.\d/\d+\.\d\sGB · disk .+ free"))
    shoot(page, "system-indicator", full_page=False)

    bar.click()
    expect(page).to_have_url(re.compile(r"/system$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("System")
    expect(page.locator("#sys-ram")).to_contain_text("used of")
    expect(page.locator("#sys-disk")).to_contain_text("ydc keeps 500.0 MB free")
    expect(page.locator("header.top nav a[aria-current=page]")).to_have_text("System")
    shoot(page, "system")


@pytest.mark.e2e
def test_two_gpus_show_on_the_page_and_in_the_indicator(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    script = fake_nvidia_smi(tmp_path, RECORDED_NVIDIA_SMI)
    app = live.app
    saved = app.state.system_monitor
    app.state.system_monitor = SystemMonitor(live.data_dir, nvidia_smi=str(script))
    try:
        page.goto("/system")
        expect(page.locator("#sys-gpu .sys-gpu")).to_have_count(2)
        expect(page.locator("#sys-gpu")).to_contain_text("NVIDIA GeForce RTX 3090")
        expect(page.locator("#sysbar")).to_contain_text(re.compile(r"GPU0 87\s%"))
        shoot(page, "system-gpus")
    finally:
        app.state.system_monitor = saved


@pytest.mark.e2e
def test_an_upload_over_the_disk_reserve_is_refused_in_the_upload_box_with_the_reason(
    live: LiveServer, page: Page, tmp_path: Path
) -> None:
    project = "reserve-full"
    with api(live) as http:
        assert http.post("/api/v1/projects", json={"name": project, "classes": ["car"]}).is_success
    chosen = tmp_path / "harbour.jpg"
    chosen.write_bytes(photo(41))
    stores = live.app.state.stores
    saved = stores.disk_reserve
    figures = os.statvfs(live.data_dir)
    stores.disk_reserve = figures.f_bavail * figures.f_frsize + 10**12  # 1 TB over what is free
    try:
        page.goto(f"/projects/{project}")
        page.locator("#upload-files").set_input_files([chosen])
        refused = page.locator("#upload-list li.result-refused")
        expect(refused.locator(".original")).to_have_text("harbour.jpg")
        expect(refused.locator(".detail")).to_contain_text("Not enough disk space")
        expect(refused.locator(".detail")).to_contain_text("(YDC_DISK_RESERVE_MB)")
        shoot(page, "upload-refused-disk-reserve")
    finally:
        stores.disk_reserve = saved
    with api(live) as http:
        assert http.get(f"/api/v1/projects/{project}/images").json()["count"] == 0
