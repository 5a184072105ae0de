"""Helpers for the browser tests: an API client, seeding through the stores, screenshots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import httpx
import numpy as np
from fastapi import FastAPI
from playwright.sync_api import Page, expect

from app.domain.models import Annotation
from app.domain.stores import Stores

RESULTS = Path(__file__).resolve().parents[2] / "test-results"
SCREENS = RESULTS / "screens"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
FINISHED = {"succeeded", "failed", "cancelled"}

T = TypeVar("T")


class LoopCapture:
    """The app behind a wrapper that notes the event loop uvicorn serves it on (the lifespan
    startup is its first call), so tests can run store coroutines on that same loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class LiveServer:
    """The served app: its URL, the app itself, the loop it runs on and its data dir."""

    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop
    data_dir: Path

    @property
    def stores(self) -> Stores:
        return self.app.state.stores  # type: ignore[no-any-return]

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        """Run ``coro`` (e.g. a store call) on the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)


@contextmanager
def api(live: LiveServer) -> Iterator[httpx.Client]:
    """A JSON API client that carries the CSRF cookie and header."""
    with httpx.Client(base_url=live.url, timeout=10) as http:
        http.headers["X-CSRF-Token"] = http.get("/api/v1/csrf").json()["token"]
        yield http


def wait_until_finished(http: httpx.Client, task_id: int, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task: dict[str, Any] = http.get(f"/api/v1/tasks/{task_id}").json()
        if task["status"] in FINISHED or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def box(index: int, x: float = 0.5, y: float = 0.5, w: float = 0.25, h: float = 0.25) -> Annotation:
    """An accepted box of the class at YOLO ``index``."""
    return Annotation(index, x, y, w, h)


def line(index: int, x: float = 0.5, y: float = 0.5, w: float = 0.25, h: float = 0.25) -> str:
    """The label file line the mirror writes for ``box(...)``."""
    return f"{index} {x:.6f} {y:.6f} {w:.6f} {h:.6f}"


def seed_image(
    live: LiveServer,
    project: str,
    filename: str,
    boxes: list[Annotation],
    *,
    seed: int,
    split: str = "train",
    size: tuple[int, int] = (96, 64),
) -> str:
    """Store a noise image in ``split`` through the image store and, when ``boxes`` are given,
    its accepted boxes through the label store (which writes the label file mirror). Returns
    the stored file name."""
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    info = live.run(live.stores.image.save(project, split, filename, pixels))
    if boxes:
        live.run(live.stores.label.save(project, split, info.filename, boxes))
    return info.filename


def label_file(live: LiveServer, project: str, filename: str, split: str = "train") -> Path:
    return live.data_dir / "projects" / project / "labels" / split / (Path(filename).stem + ".txt")


def label_lines(live: LiveServer, project: str, filename: str) -> list[str]:
    return label_file(live, project, filename).read_text().splitlines()


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Screenshots of what the page shows now at desktop and phone sizes, as
    ``test-results/screens/<name>-<desktop|phone>.png``; the page is left at desktop size.
    ``full_page=False`` keeps to the viewport (where fixed elements such as the toast sit)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        expect(page.locator("footer")).to_be_attached()
        page.screenshot(path=str(SCREENS / f"{name}-{size}.png"), full_page=full_page)
    width, height = SIZES["desktop"]
    page.set_viewport_size({"width": width, "height": height})


def photo(seed: int, width: int = 320, height: int = 240) -> bytes:
    """A photo-like JPEG: smooth colour fields with a little grain, different for each seed."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(
        rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.normal(0, 4, (height, width, 3))
    ok, encoded = cv2.imencode(".jpg", np.clip(base + grain, 0, 255).astype(np.uint8))
    assert ok
    return encoded.tobytes()
