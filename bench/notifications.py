"""What every open page's notification poll costs: ``GET /api/v1/notifications?after=<cursor>``.

Usage: .venv/bin/python bench/notifications.py [--ended N] [--requests R]

Ends N tasks (default 20,000; SQL inserts, no workers) on a SQLite data dir, then times R
requests (default 1,000) through the whole app in-process (httpx ASGI: middleware, routing,
JSON): with nothing new (what nearly every poll is), with 5 new ends, and the first call of a
page (the current cursor); and ``GET /api/v1/csrf`` (no database) for scale. Prints JSON; times
in milliseconds. A page polls every ``YDC_NOTIFY_POLL_S`` (5 s): 100 open tabs make 20 such
requests a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.main import create_app


async def _time(client: httpx.AsyncClient, url: str, runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
    }


async def main(ended: int, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", run_tasks=False, log_level="WARNING")
        app = create_app(settings)
        async with LifespanManager(app):
            stores = app.state.stores
            await stores.dataset.create("bench", ["a"])
            async with stores.unit_of_work() as uow:
                session = uow.session
                now = time.time()
                await session.execute(
                    text(
                        "INSERT INTO task (kind, status, project_id, progress, message, params, "
                        "attempts, max_attempts, cancel_requested, created_at, finished_at) "
                        "VALUES ('export', 'succeeded', 1, 1.0, 'done', '{}', 1, 3, false, :t, :t)"
                    ),
                    [{"t": now}] * ended,
                )
                await session.execute(
                    text(
                        "INSERT INTO task_end (task_id, ended_at) SELECT id, finished_at FROM task"
                    )
                )
                await uow.commit()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                cursor = (await http.get("/api/v1/notifications")).json()["cursor"]
                assert cursor == ended
                nothing = await _time(http, f"/api/v1/notifications?after={cursor}", runs)
                five = await _time(http, f"/api/v1/notifications?after={cursor - 5}", runs)
                first = await _time(http, "/api/v1/notifications", runs)
                baseline = await _time(http, "/api/v1/csrf", runs)
    return {
        "ended_tasks": ended,
        "requests": runs,
        "nothing_new": nothing,
        "five_new": five,
        "first_call": first,
        "csrf_no_database": baseline,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ended", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=1_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.ended, args.requests)), indent=2))
