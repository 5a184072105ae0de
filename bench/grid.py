"""The image grid at scale: first page, a deep page by cursor, and a page filtered by split and
class with its count; plus the near-duplicate grouping over the stored hashes.

Usage: .venv/bin/python bench/grid.py [--images N] [--requests R] [--no-server]
                                      [--suggested-indexes] [--rebalance]

Fills a project on a SQLite file in a temp dir with N images (default 100,000) by inserting rows
directly (no image files: a grid page never opens one), 5 accepted boxes each over 10 classes,
10% with 2 pending suggestions, 5% marked "no objects" (and then without boxes). Hashes are
random; 5% of the perceptual hashes are a near-duplicate (1 to 3 bits flipped) of an earlier one.

Each read is timed R times (default 50, after 3 untimed warm-up calls) three ways:
- ``store``: ``app.services.images.list_images`` (search of a page + count) on the stores;
- ``asgi``: ``GET /api/v1/projects/bench/images`` through httpx's ASGI transport on
  ``create_app`` (the app's middleware, routing, validation and JSON included);
- ``http``: the same GET over loopback to a real uvicorn (one worker) started by this script.
Also, at the store level only (10 calls each): the other grid filters, for reference.
``--suggested-indexes`` first creates the indexes ``SUGGESTED_INDEXES`` proposes for a migration
(a no-op once the schema has them). Prints JSON: p50/p95 in milliseconds for each, the fill time
and the query plans.

``--rebalance`` times only a rebalance instead: the project's ratios become 70/20/10 (the rows
were drawn at 80/10/10), then ``ImageStore.rebalance`` redraws every image, moving about a tenth
of them (their label files are written; there are no image files to move).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db.engine import make_engine  # noqa: E402
from app.db.migrate import upgrade_to_head  # noqa: E402
from app.db.models import Image, Label  # noqa: E402
from app.domain.models import ImageFilter  # noqa: E402
from app.domain.splits import DEFAULT_RATIOS, draw_split  # noqa: E402
from app.main import create_app  # noqa: E402
from app.repositories import create_stores  # noqa: E402
from app.services.images import list_images  # noqa: E402

PROJECT = "bench"
CLASSES = [f"class{i}" for i in range(10)]
PAGE = 100
DEEP_PAGE = 500  # the page 500 deep: the cursor after the first 500 * PAGE images
BATCH = 10_000
# Proposed for a migration (not in the schema yet): the class filter's probe becomes a covering
# index search, and counts walk a project's images in id order (not in the order of another
# index that happens to be smaller, which makes every label probe a random read).
SUGGESTED_INDEXES = {
    "ix_label_image_status_class": "label (image_id, status, class_id)",
    "ix_image_project_id": "image (project_id, id)",
}


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, run_tasks=False, allowed_hosts=["testserver"])


# --- fill -----------------------------------------------------------------------------------


def _phash_band_columns() -> list[str]:
    return [c.key for c in Image.__table__.columns if c.key.startswith("phash_b")]


async def fill(settings: Settings, n_images: int) -> dict[str, Any]:
    """The project with ``n_images`` rows and their labels; returns the ids the reads need."""
    stores = create_stores(settings)
    info = await stores.dataset.create(PROJECT, CLASSES)
    await stores.close()
    class_ids = [c.id for c in info.class_details]
    rng = random.Random(4)
    band_columns = _phash_band_columns()
    bands_of: Callable[[str], tuple[int | None, ...]] | None = None
    if band_columns:
        from app.repositories.imaging import phash_bands

        bands_of = phash_bands
    engine = make_engine(settings.database_url)
    start = time.perf_counter()
    hashes: list[int] = []
    async with engine.begin() as conn:
        for first in range(0, n_images, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, n_images)):
                sha = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
                if hashes and rng.random() < 0.05:
                    value = rng.choice(hashes)
                    for bit in rng.sample(range(64), rng.randint(1, 3)):
                        value ^= 1 << bit
                else:
                    value = rng.getrandbits(64)
                hashes.append(value)
                phash = f"{value:016x}"
                row: dict[str, Any] = {
                    "project_id": info.id,
                    "split": draw_split(sha, DEFAULT_RATIOS),
                    "split_pinned": False,
                    "filename": f"frame_{i:07d}.jpg",
                    "stem_key": f"frame_{i:07d}",
                    "sha256": sha,
                    "phash": phash,
                    "width": 640,
                    "height": 480,
                    "size_bytes": 90_000,
                    "mtime_ns": 0,
                    "missing": False,
                    "no_objects": rng.random() < 0.05,
                    "version": 1,
                    "created_at": 0.0,
                }
                if bands_of is not None:
                    row.update(zip(band_columns, bands_of(phash), strict=True))
                rows.append(row)
            await conn.execute(insert(Image), rows)
        ids = list(
            (
                await conn.execute(
                    select(Image.id, Image.no_objects)
                    .where(Image.project_id == info.id)
                    .order_by(Image.id)
                )
            ).all()
        )
        labels: list[dict[str, Any]] = []
        for image_id, no_objects in ids:
            boxes = [] if no_objects else [("accepted", c) for c in rng.choices(class_ids, k=5)]
            if not no_objects and rng.random() < 0.1 / 0.95:
                boxes += [("pending", c) for c in rng.choices(class_ids, k=2)]
            for status, class_id in boxes:
                labels.append(
                    {
                        "image_id": image_id,
                        "class_id": class_id,
                        "x": 0.5,
                        "y": 0.5,
                        "w": 0.1,
                        "h": 0.1,
                        "source": "manual" if status == "accepted" else "model",
                        "confidence": None if status == "accepted" else 0.7,
                        "status": status,
                        "created_at": 0.0,
                        "updated_at": 0.0,
                    }
                )
            if len(labels) >= BATCH * 5:
                await conn.execute(insert(Label), labels)
                labels = []
        if labels:
            await conn.execute(insert(Label), labels)
    await engine.dispose()
    database = settings.data_dir / "ydc.db"
    with sqlite3.connect(database) as db:
        db.execute("ANALYZE")  # what a long-lived database has (the migration may run it too)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n_labels = db.execute("SELECT count(*) FROM label").fetchone()[0]
    return {
        "fill_seconds": round(time.perf_counter() - start, 1),
        "labels": n_labels,
        "deep_cursor": ids[DEEP_PAGE * PAGE - 1][0] if len(ids) >= DEEP_PAGE * PAGE else ids[-1][0],
        "class_id": class_ids[3],
        "band_columns": bool(band_columns),
    }


# --- timing ---------------------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)], 2),
        "max_ms": round(samples[-1], 2),
    }


def reads(ids: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three reads, as query parameters."""
    return {
        "first_page": {"limit": PAGE},
        "deep_page": {"limit": PAGE, "cursor": ids["deep_cursor"]},
        "split_and_class_page": {"limit": PAGE, "split": "val", "class_id": ids["class_id"]},
    }


def as_filter(params: dict[str, Any]) -> ImageFilter:
    return ImageFilter(split=params.get("split"), class_id=params.get("class_id"))


async def time_store(settings: Settings, ids: dict[str, Any], runs: int) -> dict[str, Any]:
    stores = create_stores(settings)
    out: dict[str, Any] = {}
    try:
        for name, params in reads(ids).items():
            page = await list_images(
                stores, PROJECT, as_filter(params), params.get("cursor"), params["limit"]
            )
            out[name] = {
                **await timed(
                    lambda p=params: list_images(
                        stores, PROJECT, as_filter(p), p.get("cursor"), p["limit"]
                    ),
                    runs,
                ),
                "items": len(page.items),
                "count": page.count,
            }
    finally:
        await stores.close()
    return out


async def time_client(client: httpx.AsyncClient, ids: dict[str, Any], runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    url = f"/api/v1/projects/{PROJECT}/images"
    for name, params in reads(ids).items():
        response = await client.get(url, params=params)
        response.raise_for_status()
        body = response.json()

        async def get(p: dict[str, Any] = params) -> None:
            (await client.get(url, params=p)).raise_for_status()

        out[name] = {**await timed(get, runs), "items": len(body["items"]), "count": body["count"]}
    return out


async def time_asgi(settings: Settings, ids: dict[str, Any], runs: int) -> dict[str, Any]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await time_client(client, ids, runs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def time_http(data_dir: Path, ids: dict[str, Any], runs: int) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        str(data_dir),
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(300):
                try:
                    await client.get("/api/v1/csrf")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the server did not start")
            return await time_client(client, ids, runs)
    finally:
        server.terminate()
        await server.wait()


def serve(data_dir: Path, port: int) -> None:
    import uvicorn

    settings = settings_for(data_dir)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


# --- query plans and near-duplicates ----------------------------------------------------------


async def plans(settings: Settings, ids: dict[str, Any]) -> dict[str, list[str]]:
    """SQLite's plan for every statement a read runs (captured as it runs, then explained)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    stores = create_stores(settings)
    out: dict[str, list[str]] = {}
    database = settings.data_dir / "ydc.db"
    event.listen(Engine, "before_cursor_execute", capture)
    try:
        for name, params in reads(ids).items():
            captured.clear()
            await list_images(
                stores, PROJECT, as_filter(params), params.get("cursor"), params["limit"]
            )
            with sqlite3.connect(database) as db:
                for n, (statement, parameters) in enumerate(captured):
                    rows = db.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
                    first = " ".join(statement.split())[:60]
                    out[f"{name}.{n} {first}"] = [row[-1] for row in rows]
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
        await stores.close()
    return out


def time_near_duplicates(settings: Settings, runs: int = 3) -> dict[str, Any]:
    try:
        from app.repositories.imaging import near_duplicate_groups
    except ImportError:
        return {"skipped": "app.repositories.imaging.near_duplicate_groups does not exist yet"}
    database = settings.data_dir / "ydc.db"
    samples = []
    groups: list[list[int]] = []
    for _ in range(runs):
        start = time.perf_counter()
        with sqlite3.connect(database) as db:
            hashes = db.execute("SELECT id, phash FROM image ORDER BY id").fetchall()
        groups = near_duplicate_groups(hashes)
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "what": "SELECT id, phash of every image + near_duplicate_groups (union-find by band)",
        "median_ms": round(statistics.median(samples), 1),
        "runs": runs,
        "groups": len(groups),
        "images_in_groups": sum(len(g) for g in groups),
    }


# --- main -----------------------------------------------------------------------------------


def add_indexes(settings: Settings) -> list[str]:
    added = []
    with sqlite3.connect(settings.data_dir / "ydc.db") as db:
        for name, target in SUGGESTED_INDEXES.items():
            table = target.split()[0]
            columns = target[len(table) :].strip()[1:-1].replace(" ", "").split(",")
            existing = {
                tuple(r[2] for r in db.execute(f"PRAGMA index_info({idx[1]})"))
                for idx in db.execute(f"PRAGMA index_list({table})")
            }
            if tuple(columns) not in existing:
                db.execute(f"CREATE INDEX {name} ON {target}")
                added.append(f"{name} ON {target}")
        db.execute("ANALYZE")
    return added


async def time_other_filters(settings: Settings, ids: dict[str, Any]) -> dict[str, Any]:
    """First page + count of the other filters (state, class alone, name), 10 calls each."""
    from app.domain.models import ImageState

    cases = {
        "class_only": ImageFilter(class_id=ids["class_id"]),
        "labelled": ImageFilter(state=ImageState.LABELLED),
        "unlabelled (none exist: the page scans everything)": ImageFilter(
            state=ImageState.UNLABELLED
        ),
        "no_objects": ImageFilter(state=ImageState.NO_OBJECTS),
        "suggestions": ImageFilter(state=ImageState.SUGGESTIONS),
        "name '0042'": ImageFilter(name="0042"),
        "val + suggestions": ImageFilter(split="val", state=ImageState.SUGGESTIONS),
    }
    stores = create_stores(settings)
    out: dict[str, Any] = {}
    try:
        for name, filters in cases.items():
            page = await list_images(stores, PROJECT, filters, None, PAGE)
            figures = await timed(
                lambda f=filters: list_images(stores, PROJECT, f, None, PAGE), 10, warmup=1
            )
            out[name] = {**figures, "count": page.count}
    finally:
        await stores.close()
    return out


async def time_bulk(settings: Settings) -> dict[str, float]:
    """One bulk move of 500 labelled images to another split, and one delete of 500 (seconds,
    write lock held throughout; no image files, so only label files are written)."""
    from app.services.images import delete_images, move_images

    stores = create_stores(settings)
    names = [f"frame_{i:07d}.jpg" for i in range(1000, 1500)]
    try:
        start = time.perf_counter()
        moved = await move_images(stores, PROJECT, names, "test")
        move_s = time.perf_counter() - start
        start = time.perf_counter()
        deleted = await delete_images(stores, PROJECT, names)
        delete_s = time.perf_counter() - start
    finally:
        await stores.close()
    return {
        "move_500_s": round(move_s, 2),
        "moved": moved,
        "delete_500_s": round(delete_s, 2),
        "deleted": deleted,
    }


async def time_rebalance(settings: Settings) -> dict[str, Any]:
    """One rebalance after the ratios changed from 80/10/10 to 70/20/10 (seconds)."""
    with sqlite3.connect(settings.data_dir / "ydc.db") as db:
        db.execute(
            "UPDATE project SET train_ratio = 0.7, val_ratio = 0.2, test_ratio = 0.1"
            " WHERE name = ?",
            (PROJECT,),
        )
    stores = create_stores(settings)
    try:
        before = await stores.image.count_by_split(PROJECT)  # type: ignore[attr-defined]
        start = time.perf_counter()
        after = await stores.image.rebalance(PROJECT)
        seconds = time.perf_counter() - start
    finally:
        await stores.close()
    labels = settings.data_dir / "projects" / PROJECT / "labels"
    return {
        "rebalance_s": round(seconds, 2),
        "before": before,
        "after": after,
        "label_files_written": sum(1 for p in labels.rglob("*.txt")) if labels.exists() else 0,
    }


async def main(
    n_images: int, runs: int, server: bool, suggested_indexes: bool, rebalance: bool = False
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        settings = settings_for(data_dir)
        await upgrade_to_head(settings.database_url)
        ids = await fill(settings, n_images)
        if rebalance:
            figures = {"images": n_images, "fill": {k: ids[k] for k in ("fill_seconds", "labels")}}
            figures["rebalance_store"] = await time_rebalance(settings)
            print(json.dumps(figures, indent=2))
            return
        if suggested_indexes:
            ids["indexes_added"] = add_indexes(settings)
        figures: dict[str, Any] = {
            "images": n_images,
            "requests_per_read": runs,
            "page_size": PAGE,
            "deep_page": f"page {DEEP_PAGE} by cursor (after image id {ids['deep_cursor']})",
            "fill": {k: ids[k] for k in ("fill_seconds", "labels")},
            "suggested_indexes_added": ids.get("indexes_added", []),
            "store": await time_store(settings, ids, runs),
            "asgi": await time_asgi(settings, ids, runs),
        }
        if server:
            figures["http_uvicorn"] = await time_http(data_dir, ids, runs)
        figures["near_duplicates"] = (
            time_near_duplicates(settings)
            if ids["band_columns"]
            else {"skipped": "the image table has no phash band columns yet"}
        )
        figures["other_filters_store"] = await time_other_filters(settings, ids)
        figures["query_plans"] = await plans(settings, ids)
        figures["bulk_store"] = await time_bulk(settings)
        figures["python"] = sys.version.split()[0]
        figures["sqlite"] = sqlite3.sqlite_version
        figures["cpus"] = os.cpu_count()
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--no-server", action="store_true", help="skip the real uvicorn run")
    parser.add_argument(
        "--suggested-indexes", action="store_true", help="add SUGGESTED_INDEXES before timing"
    )
    parser.add_argument("--rebalance", action="store_true", help="time only a rebalance")
    args = parser.parse_args()
    asyncio.run(
        main(args.images, args.requests, not args.no_server, args.suggested_indexes, args.rebalance)
    )
