"""Accounts at the service layer: hashed passwords, unique names, the last admin kept, tokens
and sessions found by their hash, the progress counts per user and UTC day, and the ``ydc user``
commands."""

from __future__ import annotations

import io
import time
from datetime import date, timedelta

import pytest

from app.cli import main as cli_main
from app.config import Settings
from app.domain.accounts import Role, acting_user, check_password, hash_password, token_hash
from app.domain.errors import AlreadyExists, Conflict, Invalid
from app.domain.models import Annotation
from app.domain.stores import Stores
from app.services import accounts
from tests.conftest import encode, make_image

PASSWORD = "correct horse battery"
DAY = 86_400


def test_passwords_are_stored_as_salted_scrypt_hashes() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert PASSWORD not in first
    assert check_password(PASSWORD, first) and check_password(PASSWORD, second)
    assert not check_password("correct horse batterY", first)
    assert not check_password(PASSWORD, "not a hash")
    assert not check_password(PASSWORD, "scrypt$x$8$1$AA$AA")


async def test_names_are_unique_whatever_their_case_and_passwords_have_a_minimum(
    stores: Stores,
) -> None:
    await accounts.add_user(stores.account, "Ada", "admin", PASSWORD)
    with pytest.raises(AlreadyExists):
        await accounts.add_user(stores.account, "ada", "viewer", PASSWORD)
    with pytest.raises(Invalid, match="at least 8"):
        await accounts.add_user(stores.account, "ben", "viewer", "short")
    with pytest.raises(Invalid, match="no role"):
        await accounts.add_user(stores.account, "ben", "owner", PASSWORD)
    with pytest.raises(Invalid, match="user name"):
        await accounts.add_user(stores.account, "../ben", "viewer", PASSWORD)
    assert [(u.name, u.role) for u in await stores.account.users()] == [("Ada", Role.ADMIN)]


async def test_the_last_admin_can_be_neither_demoted_nor_disabled_nor_removed(
    stores: Stores,
) -> None:
    await accounts.add_user(stores.account, "ada", "admin", PASSWORD)
    for change in (
        accounts.set_role(stores.account, "ada", "viewer"),
        accounts.set_disabled(stores.account, "ada", True),
        accounts.remove_user(stores.account, "ada"),
    ):
        with pytest.raises(Conflict, match="last admin"):
            await change
    await accounts.add_user(stores.account, "ben", "admin", PASSWORD)
    assert (await accounts.set_role(stores.account, "ada", "viewer")).role == Role.VIEWER


async def test_sessions_and_tokens_are_found_by_their_hash_and_end(stores: Stores) -> None:
    await accounts.add_user(stores.account, "ada", "reviewer", PASSWORD)
    assert await accounts.log_in(stores.account, "ada", "wrong password", days=1) is None
    found = await accounts.log_in(stores.account, "ADA", PASSWORD, days=1)
    assert found is not None
    user, secret = found
    login = await accounts.session_login(stores.account, secret)
    assert login is not None and login.user.name == "ada" and not login.by_token
    token, bearer = await accounts.create_api_token(stores.account, user, "script")
    assert (await accounts.token_login(stores.account, bearer)) is not None
    assert (await accounts.token_login(stores.account, token_hash(bearer))) is None

    await accounts.log_out(stores.account, secret)
    await stores.account.revoke_token(user.id, token.id)
    assert await accounts.session_login(stores.account, secret) is None
    assert await accounts.token_login(stores.account, bearer) is None


async def test_progress_counts_images_labelled_and_reviewed_per_user_and_utc_day(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stores.dataset.create("p", ["a"])
    for seed in range(3):
        data = encode(make_image(40, 30, seed), ".png")
        await stores.image.save_file("p", "train", f"{seed}.png", io.BytesIO(data))
    box = Annotation(0, 0.5, 0.5, 0.2, 0.2)
    day = (int(time.time()) // DAY - 2) * DAY
    # ben labels images 0 and 1 (two boxes each) the day before yesterday, image 2 late
    # yesterday evening; cleo rejects a suggestion yesterday morning.
    plan = [
        ("ben", "0.png", day + 10.5),
        ("ben", "1.png", day + 3600),
        ("ben", "2.png", day + 2 * DAY - 100),
    ]
    for user, filename, stamp in plan:
        monkeypatch.setattr("app.repositories.labels.now", lambda stamp=stamp: stamp)
        token = acting_user.set(user)
        try:
            await stores.label.save("p", None, filename, [box, box])
        finally:
            acting_user.reset(token)
    await stores.label.add_suggestions("p", "0.png", [Annotation(0, 0.2, 0.2, 0.1, 0.1)])
    monkeypatch.setattr("app.repositories.labels.now", lambda: day + DAY + 60)
    token = acting_user.set("cleo")
    try:
        assert await stores.label.reject_suggestions("p", "0.png") == 1
    finally:
        acting_user.reset(token)

    rows = await accounts.progress(stores.account, 7)

    first = date(1970, 1, 1) + timedelta(days=day // DAY)
    later = first + timedelta(days=1)
    assert [(r.user, r.day, r.labelled, r.reviewed) for r in rows] == [
        ("ben", later, 1, 0),
        ("cleo", later, 0, 1),
        ("ben", first, 2, 0),
    ]


def test_ydc_user_adds_lists_changes_and_removes_users(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    monkeypatch.setenv("YDC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["user", "add", "ada", "--role", "admin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["user", "add", "ben", "--role", "annotator"]) == 0
    assert cli_main(["user", "set-role", "ben", "reviewer"]) == 0
    capsys.readouterr()
    assert cli_main(["user", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["ada\tadmin", "ben\treviewer"]
    assert cli_main(["user", "remove", "ada"]) == 2
    assert "last admin" in capsys.readouterr().err
    assert cli_main(["user", "remove", "ben"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli_main(["user", "add", "cleo", "--role", "viewer"]) == 2
    assert "at least 8" in capsys.readouterr().err


def test_the_login_throttle_doubles_the_wait_after_the_free_tries_and_forgets_on_success() -> None:
    throttle = accounts.LoginThrottle(free=2, longest=8)
    throttle.failed("Ada")
    assert throttle.wait_s("ada") == 0
    throttle.failed("ada")
    assert 0 < throttle.wait_s("ADA") <= 1
    for _ in range(10):
        throttle.failed("ada")
    assert 7 < throttle.wait_s("ada") <= 8
    assert throttle.wait_s("ben") == 0
    throttle.succeeded("ada")
    assert throttle.wait_s("ada") == 0
