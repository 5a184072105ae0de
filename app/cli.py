"""The ``ydc`` command: serve, migrate, worker, export, import, reconcile, sync-from-disk,
user."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url

from app.config import ExposedWithoutAccounts, Settings
from app.db.migrate import upgrade_to_head, upgrade_to_head_sync
from app.domain.accounts import Role
from app.domain.errors import Invalid, YdcError
from app.domain.reconcile import (
    FOUND_TITLES,
    Finding,
    Found,
    Outcome,
    ReconcileReport,
    SyncReport,
)
from app.domain.stores import StorageStore
from app.repositories.datadir_lock import DataDirLock

T = TypeVar("T")


def shown_url(url: str) -> str:
    """The database URL with its password masked, for output that may end up in logs."""
    return make_url(url).render_as_string(hide_password=True)


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings.refuse_exposure()  # beyond loopback only with accounts on

    # A clear refusal here rather than a traceback from the app's start-up.
    with DataDirLock(settings.data_dir, settings.database_url) as lock:
        lock.shared()

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade_to_head_sync(settings.database_url)
    print(f"database at head: {shown_url(settings.database_url)}")
    return 0


async def _worker_loop(settings: Settings) -> None:
    from app.repositories import create_stores
    from app.tasks.runner import TaskRunner

    lock = DataDirLock(settings.data_dir, settings.database_url)
    lock.shared()
    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    runner = TaskRunner(stores.task, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner.start()
    print(f"worker {runner.name} running tasks from {shown_url(settings.database_url)}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await stores.close()
        lock.release()


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
    """A zip or a folder into a new project (``--name``, default after the source) or into an
    existing one (``--into``); prints the report. The command line reads any folder: whoever
    runs it can read it anyway (YDC_IMPORT_ROOTS bounds what the web can reach)."""
    from app.domain.import_rules import Group
    from app.repositories import create_stores
    from app.services.imports import project_name_for

    source = await asyncio.to_thread(lambda: Path(args.source).expanduser().resolve())
    name = args.into or args.name or project_name_for(source.name)
    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        if args.into is None and await stores.dataset.get(name) is not None:
            print(f"ydc: a project named {name!r} already exists (use --into to merge)")
            return 2
        report = await stores.dataset.import_dataset(
            name,
            source,
            create=args.into is None,
            add_classes=not args.no_new_classes,
            allowed_links=[source],
        )
    finally:
        await stores.close()
    print(f"{report.format} from {source} into {name}: {report.summary()}")
    for group in Group:
        for reason, count, examples in report.rows(group):
            shown = f"  e.g. {examples[0]}" if examples and group == Group.SKIPPED else ""
            print(f"  {count:>7}  {reason.value}{shown}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise Invalid("The two passwords differ; nothing was changed.")
    return first


async def _user(settings: Settings, args: argparse.Namespace) -> int:
    """``ydc user add|list|remove|set-role|password``: manage accounts (works while a server
    runs: the accounts live in the database, which takes concurrent writers)."""
    from app.repositories import create_stores
    from app.services import accounts

    password = _read_password(args) if args.action in ("add", "password") else ""
    await upgrade_to_head(settings.database_url)
    stores = create_stores(settings)
    try:
        store = stores.account
        if args.action == "add":
            user = await accounts.add_user(store, args.name, args.role, password)
            print(f"added {user.name} ({user.role})")
        elif args.action == "list":
            for user in await store.users():
                state = " (disabled)" if user.disabled else ""
                print(f"{user.name}\t{user.role}{state}")
        elif args.action == "remove":
            await accounts.remove_user(store, args.name)
            print(f"removed {args.name}")
        elif args.action == "set-role":
            user = await accounts.set_role(store, args.name, args.role)
            print(f"{user.name} is now {user.role}")
        else:
            await accounts.reset_password(store, args.name, password)
            print(f"changed the password of {args.name} (their sessions ended)")
    finally:
        await stores.close()
    if not settings.accounts and args.action == "add":
        print("note: accounts are off; set YDC_ACCOUNTS=true to require a login")
    return 0


async def _alone(settings: Settings, work: Callable[[StorageStore], Awaitable[T]]) -> T:
    """Run ``work`` with the data dir to itself (refused while a server or worker holds it)."""
    from app.repositories import create_stores

    with DataDirLock(settings.data_dir, settings.database_url) as lock:
        lock.exclusive()
        await upgrade_to_head(settings.database_url)
        stores = create_stores(settings)
        try:
            return await work(stores.storage)
        finally:
            await stores.close()


async def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    report = await _alone(
        settings,
        lambda storage: storage.reconcile(
            project=args.project, dry_run=args.dry_run, deep=args.deep, exclusive=True
        ),
    )
    print_reconcile(report)
    return 1 if report.drift else 0


def print_reconcile(report: ReconcileReport) -> None:
    """Each kind of finding under its title, then the summary line."""
    by_kind: dict[str, list[Finding]] = {}
    for finding in report.findings:
        by_kind.setdefault(finding.kind, []).append(finding)
    for kind, count in sorted(report.counts.items()):
        print(f"{FOUND_TITLES[Found(kind)]}: {count}")
        for finding in by_kind.get(kind, []):
            print(f"  {finding.path}  ({finding.detail})")
        if count > len(by_kind.get(kind, [])):
            print(f"  … and {count - len(by_kind.get(kind, []))} more")
    prefix = "dry run, nothing changed: " if report.dry_run else ""
    print(f"{prefix}{report.summary()}")


async def _sync(settings: Settings, args: argparse.Namespace) -> int:
    report = await _alone(
        settings,
        lambda storage: storage.sync_from_disk(
            project=args.project, dry_run=args.dry_run, prefer_disk=args.prefer_disk
        ),
    )
    print_sync(report)
    return 0


def print_sync(report: SyncReport) -> None:
    """A table of what was added, updated and skipped per project and kind, then why each
    skipped thing was skipped."""
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for (project, kind, outcome), count in report.counts.items():
        rows.setdefault((project, kind), {})[outcome] = count
    if not rows:
        print("nothing found under projects/ to sync")
    else:
        width = max(len(project) for project, _ in rows) + 2
        print(f"{'project':<{width}}{'kind':<9}{'added':>8}{'updated':>9}{'skipped':>9}")
        for (project, kind), counts in sorted(rows.items()):
            print(
                f"{project:<{width}}{kind:<9}{counts.get(Outcome.ADDED, 0):>8}"
                f"{counts.get(Outcome.UPDATED, 0):>9}{counts.get(Outcome.SKIPPED, 0):>9}"
            )
    skipped = [e for e in report.entries if e.outcome == Outcome.SKIPPED and e.reason]
    if skipped:
        print("skipped:")
        for entry in skipped:
            print(f"  {entry.project} {entry.kind} {entry.name}: {entry.reason}")
    verdict = "would change" if report.dry_run else "changed"
    print(
        f"{'dry run, nothing changed; ' if report.dry_run else ''}"
        f"{verdict if report.changed else 'nothing to change'} ({report.seconds:.1f} s)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ydc", description="YOLO Dataset Creator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate and start the web app (YDC_HOST:YDC_PORT)")
    sub.add_parser("migrate", help="upgrade the database to the newest schema")
    sub.add_parser("worker", help="run queued tasks without the web server")
    export = sub.add_parser("export", help="write NAME.zip (Ultralytics layout) into OUTDIR")
    export.add_argument("name")
    export.add_argument("outdir")
    imp = sub.add_parser(
        "import",
        help="import a zip or folder (Ultralytics/Roboflow/CVAT/Label Studio YOLO, COCO, VOC)",
    )
    imp.add_argument("source", help="a .zip file or a folder")
    imp.add_argument("--name", help="the new project's name (default: after the source)")
    imp.add_argument("--into", help="merge into this existing project instead")
    imp.add_argument(
        "--no-new-classes",
        action="store_true",
        help="with --into: leave out boxes of classes the project lacks",
    )
    rec = sub.add_parser(
        "reconcile",
        help="make the disk agree with the database (exit 1 when they disagreed)",
    )
    rec.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    rec.add_argument("--deep", action="store_true", help="also hash every image, read every label")
    rec.add_argument("--project", help="only this project")
    sync = sub.add_parser(
        "sync-from-disk",
        help="rebuild the database from storage/projects/ (recovery; adopts YOLO folders)",
    )
    sync.add_argument("--project", help="only this folder under projects/")
    sync.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    sync.add_argument(
        "--prefer-disk",
        action="store_true",
        help="take labels from .txt files even where the database has some",
    )
    user = sub.add_parser("user", help="manage accounts (YDC_ACCOUNTS=true)")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a user; the password is asked, or read from stdin")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    actions.add_parser("list", help="list the users and their roles")
    remove = actions.add_parser("remove", help="remove a user (labels keep their name)")
    remove.add_argument("name")
    set_role = actions.add_parser("set-role", help="give a user another role")
    set_role.add_argument("name")
    set_role.add_argument("role", choices=[r.value for r in Role])
    password = actions.add_parser("password", help="set a user's password (asked, or stdin)")
    password.add_argument("name")
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
        "reconcile": lambda s, a: asyncio.run(_reconcile(s, a)),
        "sync-from-disk": lambda s, a: asyncio.run(_sync(s, a)),
        "user": lambda s, a: asyncio.run(_user(s, a)),
    }
    try:
        return commands[args.command](settings, args)
    except (YdcError, ExposedWithoutAccounts) as error:
        print(f"ydc: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
