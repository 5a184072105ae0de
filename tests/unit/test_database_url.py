"""What the ydc commands print of the database URL."""

from __future__ import annotations

from app.cli import shown_url


def test_the_commands_print_the_database_url_without_its_password() -> None:
    url = "postgresql+asyncpg://ydc:s%40cret@db.lan:5432/ydc"

    assert shown_url(url) == "postgresql+asyncpg://ydc:***@db.lan:5432/ydc"
    assert "cret" not in shown_url(url)
    assert shown_url("sqlite+aiosqlite:////srv/ydc.db") == "sqlite+aiosqlite:////srv/ydc.db"
