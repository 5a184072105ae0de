"""Accounts in a real browser (YDC_ACCOUNTS=true): a page sends you to the login form, a wrong
password says so, logging in comes back to the page; the account page makes an API token; the
users and progress pages; logging out. Screenshots of each new page."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import Page, expect

from app.config import Settings
from app.domain.accounts import acting_user
from app.domain.models import Annotation
from app.main import create_app
from app.services import accounts
from tests.e2e.support import LiveServer, LoopCapture, seed_image, shoot

PASSWORD = "correct horse battery"
PROJECT = "street"


@pytest.fixture(scope="module")
def live_accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A second server, with accounts on: an admin, an annotator, a project with images."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("e2e-accounts") / "data",
        run_tasks=False,
        accounts=True,
        log_level="WARNING",
    )
    app = create_app(settings)
    wrapped = LoopCapture(app)
    server = uvicorn.Server(uvicorn.Config(wrapped, log_level="warning", interface="asgi3"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        assert wrapped.loop is not None
        live = LiveServer(f"http://{host}:{port}", app, wrapped.loop, settings.data_dir)
        store = live.stores.account
        live.run(accounts.add_user(store, "ada", "admin", PASSWORD))
        live.run(accounts.add_user(store, "ben", "annotator", PASSWORD))
        live.run(accounts.add_user(store, "cleo", "reviewer", PASSWORD))
        live.run(live.stores.dataset.create(PROJECT, ["car", "bicycle"]))
        for seed in range(3):
            seed_image(live, PROJECT, f"frame{seed}.jpg", [], seed=seed)
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _label_as(live: LiveServer, user: str, filename: str, boxes: list[Annotation]) -> None:
    async def save() -> None:
        acting_user.set(user)  # this task's own context: what a logged-in request sets
        await live.stores.label.save(PROJECT, None, filename, boxes)

    live.run(save())


@pytest.mark.e2e
def test_logging_in_comes_back_to_the_page_and_logging_out_ends_the_session(
    live_accounts: LiveServer, page: Page
) -> None:
    url = live_accounts.url
    _label_as(live_accounts, "ben", "frame0.jpg", [Annotation(0, 0.5, 0.5, 0.2, 0.2)])
    _label_as(live_accounts, "ben", "frame1.jpg", [Annotation(1, 0.4, 0.4, 0.2, 0.2)])
    _label_as(live_accounts, "cleo", "frame2.jpg", [Annotation(0, 0.3, 0.3, 0.2, 0.2)])

    page.goto(f"{url}/projects/{PROJECT}")
    expect(page).to_have_title("Log in · ydc")
    assert "next=/projects/street" in page.url
    shoot(page, "accounts-login")

    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text(
        "Wrong name or password (or the account is disabled)."
    )
    expect(page.get_by_label("Name")).to_have_value("ada")
    shoot(page, "accounts-login-wrong")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{url}/projects/{PROJECT}")
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="ada")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_be_visible()

    # The account page: a new API token, shown once.
    nav.get_by_role("link", name="ada").click()
    expect(page).to_have_title("Your account · ydc")
    page.get_by_label("New token for").fill("nightly upload")
    page.get_by_role("button", name="Make token").click()
    token = page.locator("#new-token")
    expect(token).to_have_value(re.compile(r"^ydc_[A-Za-z0-9_-]{43}$"))
    expect(page.locator("table.list td.name")).to_have_text("nightly upload")
    shoot(page, "accounts-account")

    page.goto(f"{url}/users")
    expect(page.locator("table.users td.name")).to_have_text(["ada", "ben", "cleo"])
    page.get_by_label("Role of ben").select_option("reviewer")
    page.locator("table.users tr", has_text="ben").get_by_role("button", name="Set").click()
    expect(page.get_by_label("Role of ben")).to_have_value("reviewer")
    shoot(page, "accounts-users")

    page.goto(f"{url}/progress")
    totals = page.locator("table.progress-totals tbody tr")
    expect(totals).to_have_count(2)
    expect(totals.nth(0)).to_contain_text("ben")
    expect(totals.nth(0).locator("td.num").first).to_have_text("2")
    shoot(page, "accounts-progress")

    page.get_by_role("navigation").get_by_role("button", name="Log out").click()
    expect(page).to_have_title("Log in · ydc")
    page.goto(f"{url}/account")
    expect(page).to_have_title("Log in · ydc")
