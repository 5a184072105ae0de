"""The composition root: ``create_app(settings)`` wires stores, services and the task runner.

Nothing is built at import time; the lifespan migrates the database, opens the stores and starts
the in-process task runner. torch and ultralytics are never imported here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.repositories import create_stores
from app.repositories.datadir_lock import DataDirLock
from app.services.storage import reconcile_at_start
from app.services.system import SystemMonitor
from app.tasks.runner import TaskRunner
from app.tasks.webhook_sender import WebhookSender, policy_from
from app.web import (
    account_pages,
    annotate_pages,
    api,
    api_images,
    api_labels,
    api_uploads,
    autolabel_pages,
    capture_folder_pages,
    evaluation_pages,
    feed_pages,
    health_pages,
    image_pages,
    import_pages,
    notification_pages,
    pages,
    prompt_pages,
    review_pages,
    session_pages,
    settings_pages,
    storage_pages,
    system_pages,
    task_pages,
    training_pages,
    version_pages,
)
from app.web.auth import AccountGate
from app.web.csrf import CsrfCookie
from app.web.errors import install_error_handlers
from app.web.formatting import TEMPLATE_GLOBALS
from app.web.headers import SecurityHeaders
from app.web.media import MediaFiles
from app.web.permissions import authorize
from app.web.security import HostOriginCheck
from app.web.urls import TEMPLATE_URLS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
SOURCE_URL = "/source"  # the running code, zipped (AGPL section 13)
VERSION = "0.1.0"

log = logging.getLogger("ydc")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app for ``settings`` (read from ``YDC_*`` variables when not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.refuse_exposure()  # beyond loopback only with accounts on
        # Alone on the data dir (no other server or worker): every temp file is stale.
        lock = DataDirLock(settings.data_dir, settings.database_url)
        alone = lock.try_exclusive()
        if not alone:
            lock.shared()  # refuses while a command-line reconcile or sync holds it
        try:
            await upgrade_to_head(settings.database_url)
            stores = create_stores(settings)
            app.state.reconcile_at_start = await reconcile_at_start(stores, exclusive=alone)
        except BaseException:
            lock.release()
            raise
        lock.shared()
        runner = TaskRunner(stores.task, settings) if settings.run_tasks else None
        app.state.settings = settings
        app.state.stores = stores
        app.state.runner = runner
        if runner is not None:
            runner.start()
        # Webhook deliveries go out from the server even when workers run the tasks.
        app.state.webhook_sender = sender = WebhookSender(stores, policy_from(settings))
        sender.start()
        log.info("ydc serving data dir %s", settings.data_dir)
        try:
            yield
        finally:
            await sender.stop()
            if runner is not None:
                await runner.stop()
            await stores.close()
            lock.release()

    app = FastAPI(
        docs_url=None,  # served below from vendored Swagger UI: no CDN
        redoc_url=None,
        title="ydc — YOLO Dataset Creator",
        version=VERSION,
        lifespan=lifespan,
        dependencies=[Depends(authorize)],  # the role each route needs (accounts on)
        description="Make YOLO object-detection datasets: projects, classes, images, labels, "
        "tasks. JSON API under /api/v1.",
    )
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.globals.update(
        source_url=SOURCE_URL,
        version=VERSION,
        max_upload_mb=round(settings.max_upload_bytes / 2**20),
        notify_every_ms=round(settings.notify_poll_s * 1000),
        **TEMPLATE_GLOBALS,
        **TEMPLATE_URLS,
    )
    app.state.templates = templates
    app.state.system_monitor = SystemMonitor(settings.data_dir)  # keeps the last CPU sample
    # add_middleware wraps: the last added runs first. Security headers go on every answer
    # (refusals and 500s included); foreign hosts are refused before the app sees them, and
    # (accounts on) requests without a login before they reach a route or /media.
    if settings.accounts:
        app.add_middleware(AccountGate)
    app.add_middleware(CsrfCookie)
    app.add_middleware(HostOriginCheck, allowed_hosts=settings.hosts)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(
        "/media",
        MediaFiles(directory=settings.data_dir / "projects", check_dir=False),
        name="media",
    )

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    app.include_router(api.router)
    app.include_router(api_images.router)
    app.include_router(api_uploads.router)
    app.include_router(health_pages.api_router)
    app.include_router(api_labels.router)
    app.include_router(pages.router)
    app.include_router(image_pages.router)
    app.include_router(health_pages.router)
    app.include_router(annotate_pages.router)
    app.include_router(review_pages.router)
    app.include_router(task_pages.router)
    app.include_router(storage_pages.router)
    app.include_router(storage_pages.api_router)
    app.include_router(import_pages.router)
    app.include_router(import_pages.api_router)
    app.include_router(training_pages.router)
    app.include_router(training_pages.api_router)
    app.include_router(evaluation_pages.router)
    app.include_router(evaluation_pages.api_router)
    app.include_router(autolabel_pages.router)
    app.include_router(autolabel_pages.api_router)
    app.include_router(prompt_pages.router)
    app.include_router(prompt_pages.api_router)
    app.include_router(session_pages.router)
    app.include_router(session_pages.api_router)
    app.include_router(capture_folder_pages.router)
    app.include_router(capture_folder_pages.api_router)
    app.include_router(feed_pages.router)
    app.include_router(feed_pages.api_router)
    app.include_router(account_pages.router)
    app.include_router(account_pages.api_router)
    app.include_router(notification_pages.router)
    app.include_router(notification_pages.api_router)
    app.include_router(settings_pages.router)
    app.include_router(settings_pages.api_router)
    app.include_router(system_pages.router)
    app.include_router(system_pages.api_router)
    app.include_router(version_pages.router)
    app.include_router(version_pages.api_router)
    install_error_handlers(app)
    return app
