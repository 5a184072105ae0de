"""The ``ydc`` command: serve, migrate, worker, export, import."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from app.config import Settings
from app.db.migrate import upgrade_to_head, upgrade_to_head_sync
from app.domain.errors import YdcError


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade_to_head_sync(settings.database_url)
    print(f"database at head: {settings.database_url}")
    return 0


async def _worker_loop(settings: Settings) -> None:
    from app.repositories import create_stores
    from app.tasks.runner import TaskRunner

    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    runner = TaskRunner(stores.task, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner.start()
    print(f"worker {runner.name} running tasks from {settings.database_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await stores.close()


def _worker(settings: Settings, _args: argparse.Namespace) -> int:
    asyncio.run(_worker_loop(settings))
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    from app.repositories import create_stores

    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        result = await stores.dataset.export(args.name, Path(args.outdir))
    finally:
        await stores.close()
    print(f"wrote {result.path} ({result.images} images, {result.labels} boxes)")
    for reason, names in result.left_out.items():
        if names:
            print(f"left out ({reason}): {len(names)}")
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from app.repositories import create_stores

    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        info = await stores.dataset.import_zip(Path(args.zip), args.name)
    finally:
        await stores.close()
    print(f"imported project {info.name}: {info.num_images} images, classes {info.classes}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ydc", description="YOLO Dataset Creator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate and start the web app (YDC_HOST:YDC_PORT)")
    sub.add_parser("migrate", help="upgrade the database to the newest schema")
    sub.add_parser("worker", help="run queued tasks without the web server")
    export = sub.add_parser("export", help="write NAME.zip (Ultralytics layout) into OUTDIR")
    export.add_argument("name")
    export.add_argument("outdir")
    imp = sub.add_parser("import", help="create a project from an Ultralytics-layout zip")
    imp.add_argument("zip")
    imp.add_argument("--name", help="project name (default: the zip's stem)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    commands = {
        "serve": _serve,
        "migrate": _migrate,
        "worker": _worker,
        "export": lambda s, a: asyncio.run(_export(s, a)),
        "import": lambda s, a: asyncio.run(_import(s, a)),
    }
    try:
        return commands[args.command](settings, args)
    except YdcError as error:
        print(f"ydc: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
