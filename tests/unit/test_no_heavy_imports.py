"""The server and the CLI start without importing torch or ultralytics (only task workers may)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import asyncio, json, sys

    import httpx
    from asgi_lifespan import LifespanManager

    HEAVY = ("torch", "ultralytics")

    def heavy():
        # The top-level names only: one "torch" says enough.
        return sorted({
            m.split(".")[0]
            for m in sys.modules
            if any(m == h or m.startswith(h + ".") for h in HEAVY)
        })

    async def serve_index(data_dir):
        from app.config import Settings
        from app.main import create_app

        app = create_app(Settings(data_dir=data_dir))
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://[::1]") as client:
                return (await client.get("/")).status_code

    status = asyncio.run(serve_index(sys.argv[1]))
    after_app = heavy()
    import app.cli
    after_cli = heavy()
    print(json.dumps({"status": status, "after_app": after_app, "after_cli": after_cli}))
    """
)


def _probe(tmp_path: Path) -> dict[str, object]:
    env = {**os.environ, "YDC_RUN_TASKS": "false", "YDC_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_serving_the_app_and_loading_the_cli_import_neither_torch_nor_ultralytics(
    tmp_path: Path,
) -> None:
    seen = _probe(tmp_path)

    assert seen["status"] == 200
    assert seen["after_app"] == []
    assert seen["after_cli"] == []
