"""Store read paths at scale: a grid page (keyset) and the project list with counts.

Usage: .venv/bin/python bench/bench_stores.py [N_IMAGES]   (default 100000)
Prints JSON: median milliseconds of 7 runs for each read, on a SQLite file in a temp dir.
Rows are inserted with SQL directly (no files): the reads measured never touch the disk.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, text

from app.config import Settings
from app.db.engine import make_engine
from app.db.migrate import upgrade_to_head
from app.db.models import Image
from app.repositories import create_stores


async def timed(fn, runs: int = 7) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


async def main(n_images: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", run_tasks=False)
        await upgrade_to_head(settings.database_url)
        stores = create_stores(settings)
        info = await stores.dataset.create("bench", ["a", "b", "c"])
        class_id = info.class_details[0].id
        engine = make_engine(settings.database_url)
        start = time.perf_counter()
        async with engine.begin() as conn:
            batch = 10_000
            for first in range(0, n_images, batch):
                rows = [
                    {
                        "project_id": info.id,
                        "split": ("train", "train", "train", "val", "test")[i % 5],
                        "split_pinned": False,
                        "filename": f"img{i:07d}.jpg",
                        "stem_key": f"img{i:07d}",
                        "sha256": f"{i:064x}",
                        "phash": None,
                        "width": 640,
                        "height": 480,
                        "size_bytes": 50_000,
                        "mtime_ns": 0,
                        "missing": False,
                        "no_objects": False,
                        "version": 0,
                        "created_at": 0.0,
                    }
                    for i in range(first, min(first + batch, n_images))
                ]
                await conn.execute(insert(Image), rows)
            # Every other image gets one accepted box.
            await conn.execute(
                text(
                    "INSERT INTO label (image_id, class_id, x, y, w, h, source, status,"
                    " created_at, updated_at) SELECT id, :cls, 0.5, 0.5, 0.1, 0.1, 'manual',"
                    " 'accepted', 0, 0 FROM image WHERE id % 2 = 0"
                ),
                {"cls": class_id},
            )
        fill_s = time.perf_counter() - start
        await engine.dispose()
        middle = n_images // 2

        figures = {
            "images": n_images,
            "fill_seconds": round(fill_s, 1),
            "grid_first_page_ms": await timed(lambda: stores.image.list("bench", limit=100)),
            "grid_deep_page_ms": await timed(
                lambda: stores.image.list("bench", after_id=middle, limit=100)
            ),
            "grid_split_page_ms": await timed(
                lambda: stores.image.list("bench", "val", after_id=middle, limit=100)
            ),
            "project_list_with_counts_ms": await timed(stores.dataset.list),
            "project_get_ms": await timed(lambda: stores.dataset.get("bench")),
        }
        await stores.close()
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
