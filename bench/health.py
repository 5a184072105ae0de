"""Dataset health at scale: ``DatasetStore.health`` on a project of N images.

Usage: .venv/bin/python bench/health.py [--images N] [--runs R]

Fills a project as ``bench/grid.py`` does (N rows, default 100,000, 5 accepted boxes each over 10
classes, 10% with suggestions, 5% "no objects", 5% of the perceptual hashes a near-duplicate of
an earlier one; no image files). Then times ``health()``:

- ``cold``: the first call (the near-duplicate grouping runs), and again after an image is
  added (the cache is keyed by the project's image rows, so it runs again);
- ``warm``: R calls (default 20) with the grouping cached: only the grouped counts and the
  splits of the grouped images are read;
- ``after_move``: a call right after a bulk move (splits are read afresh, nothing regrouped);
- each of its queries alone, with SQLite's plan.

Prints JSON; times in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from app.db.migrate import upgrade_to_head  # noqa: E402
from app.repositories import create_stores  # noqa: E402
from bench.grid import PROJECT, fill, settings_for, timed  # noqa: E402
from tests.conftest import encode, make_image  # noqa: E402


async def main(n_images: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ydc-bench-health-") as tmp:
        settings = settings_for(Path(tmp) / "data")
        await upgrade_to_head(settings.database_url)
        filled = await fill(settings, n_images)
        stores = create_stores(settings)
        out: dict[str, Any] = {"images": n_images, "fill": filled}
        try:
            start = time.perf_counter()
            health = await stores.dataset.health(PROJECT)
            out["cold_ms"] = round((time.perf_counter() - start) * 1000, 1)
            out["result"] = {
                "splits": {s.split: s.images for s in health.splits},
                "labelled": health.total.labelled,
                "boxes": health.boxes,
                "near_duplicate_groups": health.near_duplicate_groups,
                "near_duplicate_images": health.near_duplicate_images,
                "leaking_groups": health.leaking_groups,
                "exact_duplicates": health.exact_duplicates,
            }
            out["warm"] = await timed(lambda: stores.dataset.health(PROJECT), runs, warmup=1)

            names = [f"frame_{i:07d}.jpg" for i in range(2000, 2100)]
            await stores.image.move_many(PROJECT, names, "test")
            start = time.perf_counter()
            await stores.dataset.health(PROJECT)
            out["after_move_ms"] = round((time.perf_counter() - start) * 1000, 1)

            await stores.image.save_file(
                PROJECT, "train", "new.png", io.BytesIO(encode(make_image(seed=1)))
            )
            start = time.perf_counter()
            await stores.dataset.health(PROJECT)
            out["cold_after_add_ms"] = round((time.perf_counter() - start) * 1000, 1)

            out["statements"] = await statements(stores, settings.data_dir / "ydc.db")
        finally:
            await stores.close()
    return out


async def statements(stores: Any, database: Path) -> list[dict[str, Any]]:
    """Each SELECT of a warm ``health()`` call, timed alone in sqlite3, with its plan."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        await stores.dataset.health(PROJECT)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    found = []
    with sqlite3.connect(database) as db:
        for statement, parameters in captured:
            start = time.perf_counter()
            rows = db.execute(statement, parameters).fetchall()
            elapsed = (time.perf_counter() - start) * 1000
            plan = db.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            found.append(
                {
                    "sql": " ".join(statement.split())[:90],
                    "ms": round(elapsed, 1),
                    "rows": len(rows),
                    "plan": [row[-1] for row in plan],
                }
            )
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.images, args.runs)), indent=2))
