"""The crash test's parts: a server subprocess started and killed, a client that uploads images
and saves label sets while keeping a ledger of what was answered and what was in flight, and the
final check of the data dir against that ledger, made on disk and in the SQLite file directly.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import yaml

PROJECT = "crash"
CLASSES = ["cat", "dog", "bird"]
SPLITS = ("train", "val", "test")
TOLERANCE = 1e-6  # the mirror writes six decimals
START_TIMEOUT_S = 30.0

Box = tuple[int, float, float, float, float]  # YOLO index, centre x, y, width, height


# --- the server subprocess --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# What a server start spends most of its second on: imported once in multiprocessing's fork
# server, so each of the 21 starts forks a process that has them already (about 1 s saved per
# start). Nothing of ``app`` is preloaded: ``app.faults`` reads its environment at import.
PRELOAD = [
    "numpy",
    "cv2",
    "PIL.Image",
    "yaml",
    "jinja2",
    "pydantic_settings",
    "fastapi",
    "fastapi.templating",
    "starlette.staticfiles",
    "sqlalchemy.ext.asyncio",
    "aiosqlite",
    "alembic.command",
    "uvicorn",
]
_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload(PRELOAD)


def serve(env: dict[str, str], log_path: str) -> None:
    """The server process: ``ydc serve`` with this environment, its output in the log."""
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.clear()
    os.environ.update(env)
    if "app.faults" in sys.modules:
        # Imported into the fork server by a ``__main__`` that imports the tests: read this
        # start's fault point (``fault_point`` reads the module's globals, which reload resets).
        importlib.reload(sys.modules["app.faults"])
    from app.cli import main

    sys.exit(main(["serve"]))


@dataclass
class Server:
    process: BaseProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float) -> int | None:
        """The exit code (``-9`` for SIGKILL), or ``None`` if it still runs after ``timeout``."""
        self.process.join(timeout)
        return self.process.exitcode


def start_server(data_dir: Path, log_path: Path, fault: tuple[str, int] | None) -> Server | None:
    """Start ``ydc serve`` on ``data_dir`` (armed at ``fault`` = (point, N) if given) and wait
    until it answers. ``None`` when it died on its own first (a fault point reached during
    start-up); any other way of failing to start raises."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YDC_")}
    env.update(
        YDC_DATA_DIR=str(data_dir),
        YDC_PORT=str(port),
        YDC_RUN_TASKS="false",
        YDC_LOG_LEVEL="WARNING",
    )
    if fault is not None:
        env.update(YDC_FAULT_POINT=fault[0], YDC_FAULT_AFTER=str(fault[1]))
    with open(log_path, "ab") as log:
        log.write(f"--- start, fault {fault}\n".encode())
    process = _forkserver.Process(target=serve, args=(env, str(log_path)), daemon=True)
    process.start()
    server = Server(process, port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = process.exitcode
        if code == -signal.SIGKILL and fault is not None:
            return None
        if code is not None:
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            raise RuntimeError(f"the server exited with {code} while starting:\n{tail}")
        try:
            if httpx.get(f"{server.url}/api/v1/csrf", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S:.0f} s")


def stop_cleanly(server: Server) -> int | None:
    """SIGINT (uvicorn's clean shutdown: lifespan end, engine disposed) and wait."""
    assert server.process.pid is not None
    os.kill(server.process.pid, signal.SIGINT)
    code = server.wait(30)
    if code is None:
        server.process.kill()
    return code


@contextmanager
def api_client(base_url: str) -> Iterator[httpx.Client]:
    """A client holding the CSRF cookie and echoing its token, as a script must."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        token = client.get("/api/v1/csrf").raise_for_status().json()["token"]
        client.headers["X-CSRF-Token"] = token
        yield client


# --- what the client sends --------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSet:
    """An image's accepted labels (as a sorted multiset) and its "no objects" mark."""

    no_objects: bool = False
    boxes: tuple[Box, ...] = ()

    @classmethod
    def of(cls, no_objects: bool, boxes: list[Box]) -> LabelSet:
        return cls(no_objects, tuple(sorted(boxes)))

    def matches(self, other: LabelSet) -> bool:
        return self.no_objects == other.no_objects and same_boxes(self.boxes, other.boxes)

    def payload(self, version: int) -> dict[str, Any]:
        labels = [
            {"class_id": c, "x": x, "y": y, "width": w, "height": h} for c, x, y, w, h in self.boxes
        ]
        return {"version": version, "labels": labels, "no_objects": self.no_objects}


def same_boxes(a: tuple[Box, ...] | list[Box], b: tuple[Box, ...] | list[Box]) -> bool:
    if len(a) != len(b):
        return False
    for left, right in zip(sorted(a), sorted(b), strict=True):
        if left[0] != right[0]:
            return False
        if any(abs(p - q) > TOLERANCE for p, q in zip(left[1:], right[1:], strict=True)):
            return False
    return True


def random_label_set(rng: random.Random) -> LabelSet:
    if rng.random() < 0.15:
        return LabelSet(no_objects=True)
    boxes: list[Box] = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
        # On a grid of thousandths, so every corner lies within [0, 1].
        w, h = rng.randint(100, 400), rng.randint(100, 400)
        x = rng.randint((w + 1) // 2, 1000 - (w + 1) // 2)
        y = rng.randint((h + 1) // 2, 1000 - (h + 1) // 2)
        boxes.append((rng.randrange(len(CLASSES)), x / 1000, y / 1000, w / 1000, h / 1000))
    return LabelSet.of(False, boxes)


def random_image(rng: random.Random) -> bytes:
    """A small PNG of random shapes and colours (a distinct sha256 and perceptual hash)."""
    width, height = rng.randint(48, 96), rng.randint(40, 80)
    frame = np.full((height, width, 3), [rng.randrange(256) for _ in range(3)], np.uint8)
    for _ in range(rng.randint(2, 5)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        p1 = (rng.randrange(width), rng.randrange(height))
        if rng.random() < 0.5:
            p2 = (rng.randrange(width), rng.randrange(height))
            cv2.rectangle(frame, p1, p2, colour, -1)
        else:
            cv2.circle(frame, p1, rng.randint(4, 20), colour, -1)
    ok, buf = cv2.imencode(".png", frame)
    assert ok
    return buf.tobytes()


# --- the ledger -------------------------------------------------------------------------------


@dataclass
class ImageState:
    """What the client knows of one image. Only its owner thread touches it, so its saves are
    sequential and "the last one answered" is well defined."""

    filename: str
    owner: int
    acked: LabelSet = field(default_factory=LabelSet)
    in_flight: list[LabelSet] = field(default_factory=list)  # sent after ``acked``, no answer
    version: int | None = None  # None: read it back before the next save

    def candidates(self) -> list[LabelSet]:
        return [self.acked, *self.in_flight]


@dataclass
class Ledger:
    images: dict[str, ImageState] = field(default_factory=dict)
    # Uploads whose answer never came, by name and owner: stored or not, as the DB says.
    pending_uploads: dict[str, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def owned_by(self, owner: int) -> list[ImageState]:
        with self.lock:
            return [s for s in self.images.values() if s.owner == owner]

    def add(self, state: ImageState) -> None:
        with self.lock:
            self.images[state.filename] = state


# --- the client -------------------------------------------------------------------------------


class ServerGone(Exception):
    """The server stopped answering: this thread's work for this life is over."""


def _labels_of(body: dict[str, Any]) -> LabelSet:
    boxes = [
        (b["class_id"], b["x"], b["y"], b["width"], b["height"]) for b in body.get("labels", [])
    ]
    return LabelSet.of(bool(body["no_objects"]), boxes)


class Client:
    """One thread's loop: upload new images and save label sets on its own images until the
    server dies, recording every answer (and every non-answer) in the ledger."""

    http: httpx.Client  # set by ``run`` for its life

    def __init__(self, base_url: str, ledger: Ledger, owner: int, life: int, seed: int) -> None:
        self.base_url = base_url
        self.ledger = ledger
        self.owner = owner
        self.life = life
        self.rng = random.Random(seed)
        self.uploads = 0

    def run(self, stop: threading.Event) -> None:
        try:
            with api_client(self.base_url) as http:
                self.http = http
                self._resolve_pending_uploads()
                while not stop.is_set():
                    mine = self.ledger.owned_by(self.owner)
                    if not mine or self.rng.random() < 0.25:
                        self.upload()
                    else:
                        self.save(self.rng.choice(mine))
        except ServerGone:
            pass
        except httpx.TransportError:  # the token fetch, before any write
            pass

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        """The answer, or ``None`` when the request may have reached the server but its answer
        never came; raises ``ServerGone`` when it cannot have (nothing was connected)."""
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.ConnectError:
            raise ServerGone from None
        except httpx.TransportError:
            return None

    def _read_back(self, state: ImageState) -> None:
        """After a restart or a 409: the DB's current labels must be one of the candidates;
        from here on they are the acknowledged state."""
        try:
            response = self.http.get(f"/api/v1/projects/{PROJECT}/images/{state.filename}/labels")
        except httpx.TransportError:
            raise ServerGone from None
        if response.status_code != 200:
            self.ledger.problem(f"GET labels of {state.filename}: {response.status_code}")
            raise ServerGone
        body = response.json()
        current = _labels_of(body)
        if not any(current.matches(c) for c in state.candidates()):
            self.ledger.problem(
                f"{state.filename} read back {current}, not one of {state.candidates()}"
            )
        state.acked, state.in_flight, state.version = current, [], body["version"]

    def _resolve_pending_uploads(self) -> None:
        with self.ledger.lock:
            mine = [n for n, o in self.ledger.pending_uploads.items() if o == self.owner]
        for name in mine:
            try:
                response = self.http.get(f"/api/v1/projects/{PROJECT}/images/{name}")
            except httpx.TransportError:
                raise ServerGone from None
            if response.status_code == 200:
                self.ledger.add(ImageState(name, self.owner))
                self.ledger.count("uploads in flight that were stored")
            elif response.status_code != 404:
                self.ledger.problem(f"GET image {name}: {response.status_code}")
                raise ServerGone
            with self.ledger.lock:
                del self.ledger.pending_uploads[name]

    def upload(self) -> None:
        self.uploads += 1
        name = f"l{self.life:02d}-t{self.owner}-{self.uploads:03d}.png"
        data = random_image(self.rng)
        with self.ledger.lock:
            self.ledger.pending_uploads[name] = self.owner
        try:
            response = self._send(
                "POST",
                f"/api/v1/projects/{PROJECT}/images",
                files=[("files", (name, data, "image/png"))],
            )
        except ServerGone:  # never sent: it must not turn up
            with self.ledger.lock:
                del self.ledger.pending_uploads[name]
            raise
        if response is None:
            self.ledger.count("uploads in flight at a kill")
            raise ServerGone
        with self.ledger.lock:
            del self.ledger.pending_uploads[name]
        if response.status_code != 200:
            self.ledger.count(f"uploads refused ({response.status_code})")
            return
        result = response.json()["results"][0]
        if result["status"] != "stored" or result["filename"] != name:
            self.ledger.problem(f"upload of a new image {name} answered {result}")
            return
        self.ledger.add(ImageState(name, self.owner, version=0))
        self.ledger.count("uploads answered")

    def save(self, state: ImageState) -> None:
        if state.version is None:
            self._read_back(state)
        assert state.version is not None
        wanted = random_label_set(self.rng)
        # Now and then a stale version, as a second annotator's tab would send: a 409 that
        # must change nothing, crash or not.
        stale = state.version > 0 and self.rng.random() < 0.05
        response = self._send(
            "PUT",
            f"/api/v1/projects/{PROJECT}/images/{state.filename}/labels",
            json=wanted.payload(state.version - 1 if stale else state.version),
        )
        if response is None:
            if not stale:
                state.in_flight.append(wanted)
            state.version = None
            self.ledger.count("label saves in flight at a kill")
            raise ServerGone
        if stale and response.status_code != 409:
            self.ledger.problem(f"{state.filename}: a stale save answered {response.status_code}")
        if response.status_code == 200:
            body = response.json()
            if not _labels_of(body).matches(wanted):
                self.ledger.problem(f"{state.filename}: saved {wanted}, answered {body}")
            state.acked, state.in_flight, state.version = wanted, [], body["version"]
            self.ledger.count("label saves answered")
            return
        # Refused: nothing changed (409: another save got there first; read it back).
        self.ledger.count(f"label saves refused ({response.status_code})")
        state.version = None


# --- the final check --------------------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def parse_mirror(text: str) -> list[Box]:
    boxes: list[Box] = []
    for line in text.splitlines():
        if line.strip():
            c, x, y, w, h = line.split()
            boxes.append((int(c), float(x), float(y), float(w), float(h)))
    return boxes


def check_data_dir(data_dir: Path, ledger: Ledger) -> tuple[Counter[str], list[str]]:
    """Compare the stopped server's data dir with the DB (read-only) and the ledger: the
    counts found, and every broken promise as a sentence."""
    counts: Counter[str] = Counter()
    problems: list[str] = []
    folder = data_dir / "projects" / PROJECT
    db = sqlite3.connect(f"file:{data_dir / 'ydc.db'}?mode=ro", uri=True)
    try:
        (project_id,) = db.execute("SELECT id FROM project WHERE name = ?", (PROJECT,)).fetchone()
        classes = [
            name
            for (name,) in db.execute(
                "SELECT name FROM project_class WHERE project_id = ? ORDER BY position",
                (project_id,),
            )
        ]
        rows = db.execute(
            "SELECT id, split, filename, sha256, size_bytes, missing, no_objects FROM image "
            "WHERE project_id = ?",
            (project_id,),
        ).fetchall()
        boxes: dict[int, list[Box]] = {}
        for image_id, position, x, y, w, h in db.execute(
            "SELECT label.image_id, project_class.position, label.x, label.y, label.w, label.h "
            "FROM label JOIN project_class ON project_class.id = label.class_id "
            "JOIN image ON image.id = label.image_id "
            "WHERE image.project_id = ? AND label.status = 'accepted'",
            (project_id,),
        ):
            boxes.setdefault(image_id, []).append((position, x, y, w, h))
    finally:
        db.close()

    # data.yaml mirrors the classes.
    names = yaml.safe_load((folder / "data.yaml").read_text())["names"]
    if [names[i] for i in sorted(names)] != classes:
        problems.append(f"data.yaml names {names} differ from the DB's classes {classes}")

    known = {(split, filename) for _, split, filename, *_ in rows}
    counts["image rows"] = len(rows)
    for image_id, split, filename, sha256, size, missing, no_objects in rows:
        if missing:
            counts["image rows marked missing"] += 1
            problems.append(f"{split}/{filename} is marked missing (nothing was deleted)")
        path = folder / "images" / split / filename
        if not path.is_file():
            problems.append(f"row {split}/{filename} has no file")
        elif path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            problems.append(f"{split}/{filename}: the file is not the row's bytes")

        db_labels = LabelSet.of(bool(no_objects), boxes.get(image_id, []))
        counts["images labelled"] += bool(no_objects or db_labels.boxes)
        state = ledger.images.get(filename)
        if state is None and filename in ledger.pending_uploads:
            state = ImageState(filename, ledger.pending_uploads[filename])
            counts["uploads in flight stored (found at the end)"] += 1
        if state is None:
            problems.append(f"{split}/{filename} has a row but was never uploaded")
        elif not any(db_labels.matches(c) for c in state.candidates()):
            problems.append(
                f"{filename}: the DB holds {db_labels}, neither the last answered set "
                f"{state.acked} nor one in flight after it {state.in_flight}"
            )

        mirror = folder / "labels" / split / (Path(filename).stem + ".txt")
        if not (no_objects or db_labels.boxes):
            if mirror.exists():
                problems.append(f"{mirror.name}: a mirror for an unlabelled image")
        elif not mirror.is_file():
            problems.append(f"{split}/{filename}: labelled in the DB, no mirror")
        elif not same_boxes(parse_mirror(mirror.read_text()), db_labels.boxes):
            problems.append(f"{split}/{mirror.name} differs from the DB: {db_labels.boxes}")
        else:
            counts["mirrors checked"] += 1

    for split in SPLITS:
        for path in _files(folder / "images" / split):
            counts["image files"] += 1
            if (split, path.name) not in known:
                problems.append(f"images/{split}/{path.name} has no row (not in lost+found)")
    stems = {(split, Path(filename).stem) for split, filename in known}
    for path in _files(folder / "labels"):
        split = path.parent.name
        if path.suffix != ".txt" or (split, path.stem) not in stems:
            problems.append(f"labels/{split}/{path.name} belongs to no image")

    counts["lost+found files"] = sum(
        p.name != "MANIFEST.tsv" for p in _files(data_dir / "lost+found")
    )
    leftovers = _files(data_dir / "tmp")
    counts["temp files"] = len(leftovers)
    problems += [f"temp file left: {p.relative_to(data_dir)}" for p in leftovers]
    return counts, problems
