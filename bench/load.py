"""Load: browser-like clients against the real server for a while, then every write the server
acknowledged checked against the database.

Usage: .venv/bin/python bench/load.py [--clients 20] [--seconds 60] [--images 300] [--runs 1]
                                      [--seed 0] [--data-dir DIR] [--profile]

Starts ``ydc serve`` (a subprocess on a free loopback port, a fresh temp ``YDC_DATA_DIR``,
SQLite, the task runner on and the INFO log as in ``make run``), seeds a project with 10 classes
and ``--images`` 640x480 JPEGs over the upload API (a third of them labelled), then runs
``--clients`` concurrent clients for ``--seconds``. Each client is a browser: its own cookie jar,
the CSRF token read from the first page it loads (``hx-headers`` on ``<body>``), at most 6
connections, thumbnails cached once fetched, the annotator's image revalidated by its ETag. Each
client repeats, without pauses, one of:

- browse (weight 4): the grid page (``grid``) unfiltered or under a random filter (split, state,
  class, part of a name), half the time then a filter change as htmx asks it (``grid_filter``,
  the results fragment), then up to 2 next pages as the infinite scroll asks them (``grid_next``,
  cursor + ``HX-Request``); the first 12 thumbnails of each page it has not seen (``media``);
- annotate (weight 5): the annotator page of its current image (``annotate``), its image
  (``media``) and its labels JSON (``labels_get``), then 1 to 3 saves (``labels_put``) as the
  annotator sends them (the version and the label ids of the previous answer; one box added,
  moved, re-classed or deleted, now and then "no objects"). A 409 (another client saved that
  image since) is handled as a person does after the annotator's "reload": the labels JSON again,
  the same edit on it, saved again (at most 5 tries). Then on to the next image under its filter
  (D) or, 1 time in 5, another image;
- upload (weight 1): 1 to 4 new JPEGs (``upload``) posted to the project page's upload endpoint
  as ``static/upload.js`` sends them (multipart, ``X-CSRF-Token``, ``HX-Request``).

Then the server is stopped and its database read (sqlite3) for the lost writes: an uploaded file
answered ``stored`` or ``duplicate`` must have a row in the project with its bytes' sha256 and a
file on disk with those bytes; for every image with an acknowledged save, the row's version,
"no objects" and accepted labels (id, class, box) must be those the last acknowledged save
answered (the highest version; a higher version in the database means a save whose answer was
lost in transit, reported as unverifiable). Label files that differ from the database are
counted too. Seeding writes are checked the same way.

Prints JSON: requests/s, p50/p95 per kind (milliseconds), statuses per kind, 5xx, requests
without an answer (a GET whose kept-alive connection the server had just closed is sent again
once, as browsers do, and counted apart; a write never is), writes (``labels_put`` + ``upload``
requests) answered with anything but 2xx (the 409s that were then retried also on their own,
and how many of them another client's acknowledged save explains), lost writes with examples,
the server's and the clients' CPU seconds, and what the server logged at WARNING or above.
``--runs`` repeats it on a fresh server and data dir and adds the medians of the runs. Exit
status 1 on any 5xx, request without an answer or lost write.
Goals (issue 10): 0 x 5xx, 0 lost writes, under 1% non-2xx writes over 60 s with 20 clients.
``--profile`` runs the server under cProfile (its event-loop thread) and prints where its time
went.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import pstats
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import cv2
import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.server import free_port, launch, stop_server  # noqa: E402

PROJECT = "load"
CLASSES = [f"class{i}" for i in range(10)]
WIDTH, HEIGHT = 640, 480
WEIGHTS = {"browse": 4, "annotate": 5, "upload": 1}
KINDS = (
    "project",
    "grid",
    "grid_filter",
    "grid_next",
    "annotate",
    "labels_get",
    "labels_put",
    "upload",
    "media",
)
WRITES = ("labels_put", "upload")
THUMBS_SHOWN = 12  # thumbnails of a grid page in view
CONNECTIONS = 6  # a browser's connections to one host
SAVE_TRIES = 5
MAX_BOXES = 8
GOAL_NON_2XX_WRITES_PCT = 1.0


# --- images ----------------------------------------------------------------------------------


def make_jpeg(seed: int) -> bytes:
    """A photo-like 640x480 JPEG (smooth shapes plus grain), different for every seed."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(
        rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
        (WIDTH, HEIGHT),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.normal(0, 7, (HEIGHT, WIDTH, 3))
    frame = np.clip(base + grain, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- what a browser reads from a page ----------------------------------------------------------


class Page(HTMLParser):
    """The parts of ydc's HTML a browser acts on here."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.csrf: str | None = None  # <body hx-headers>
        self.next_url: str | None = None  # the infinite scroll's li.more[hx-get]
        self.thumbs: list[str] = []  # tile images
        self.annotator: dict[str, Any] | None = None  # script#annotator-data
        self.upload_rows: list[tuple[str, str]] = []  # (status, original name)
        self._script = False
        self._script_text: list[str] = []
        self._row_status: str | None = None
        self._in_original = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        at = {k: v or "" for k, v in attrs}
        classes = at.get("class", "").split()
        if tag == "body" and "hx-headers" in at:
            self.csrf = json.loads(at["hx-headers"]).get("X-CSRF-Token")
        elif tag == "li" and "more" in classes:
            self.next_url = at.get("hx-get")
        elif tag == "li" and "result" in classes:
            found = [c.removeprefix("result-") for c in classes if c.startswith("result-")]
            self._row_status = found[0] if found else None
        elif tag == "span" and "original" in classes and self._row_status:
            self._in_original = True
        elif tag == "img" and "/thumbs/" in at.get("src", ""):
            self.thumbs.append(at["src"])
        elif tag == "script" and at.get("id") == "annotator-data":
            self._script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script:
            self._script = False
            self.annotator = json.loads("".join(self._script_text))
        elif tag == "span":
            self._in_original = False
        elif tag == "li":
            self._row_status = None

    def handle_data(self, data: str) -> None:
        if self._script:
            self._script_text.append(data)
        elif self._in_original and self._row_status:
            self.upload_rows.append((self._row_status, data.strip()))
            self._in_original = False


# --- what the clients record -----------------------------------------------------------------


@dataclass
class Save:
    """An acknowledged label save: what the server answered."""

    filename: str
    version: int
    no_objects: bool
    labels: list[tuple[int, int, float, float, float, float]]  # id, class index, x, y, w, h


@dataclass
class Record:
    """Everything the clients saw, for the figures and the lost-write check."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    transport_errors: Counter[str] = field(default_factory=Counter)
    gets_resent: Counter[str] = field(default_factory=Counter)  # after a closed connection
    retried_409: int = 0  # 409 answers to a save that was then tried again
    conflicts: list[tuple[str, int]] = field(default_factory=list)  # 409s: file, version sent
    saves_given_up: int = 0  # saves still 409 after SAVE_TRIES
    saves: list[Save] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)  # acknowledged file -> sha256
    upload_rows: Counter[str] = field(default_factory=Counter)  # stored/duplicate/refused

    def saved(self, body: dict[str, Any]) -> None:
        labels = [
            (b["id"], b["class_id"], b["x"], b["y"], b["width"], b["height"])
            for b in body["labels"]
        ]
        self.saves.append(Save(body["filename"], body["version"], body["no_objects"], labels))


class Browser:
    """One client: a cookie jar, the page's CSRF token, a thumbnail cache and ETags."""

    def __init__(self, base: str, record: Record, rng: random.Random, context: Context) -> None:
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        self.http = httpx.AsyncClient(base_url=base, timeout=120, limits=limits)
        self.record = record
        self.rng = rng
        self.context = context
        self.csrf = ""
        self.seen_thumbs: set[str] = set()
        self.etags: dict[str, str] = {}
        self.filters: dict[str, str] = {}
        self.current = rng.choice(context.filenames)

    async def request(
        self, kind: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request, timed with its whole body; ``None`` when no answer came. A GET whose
        kept-alive connection the server closed meanwhile (uvicorn closes idle ones after 5 s)
        is sent again once on a new connection, as browsers do; a write never is."""
        start = time.perf_counter()
        tries = 2 if method == "GET" else 1
        for attempt in range(1, tries + 1):
            try:
                response = await self.http.request(method, url, **kwargs)
                break
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if attempt == tries:
                    self.record.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
                    return None
                self.record.gets_resent[f"{kind}: {type(exc).__name__}"] += 1
            except httpx.HTTPError as exc:
                self.record.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
                return None
        self.record.latencies[kind].append(time.perf_counter() - start)
        self.record.statuses[kind][str(response.status_code)] += 1
        return response

    def write_headers(self, **extra: str) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, **extra}

    async def open(self) -> None:
        """Load the project page: the cookie lands in the jar, the token comes from the page."""
        response = await self.request("project", "GET", f"/projects/{PROJECT}")
        if response is None or response.status_code != 200:
            raise RuntimeError("the project page did not load")
        self.csrf = Page(response.text).csrf or ""

    async def run(self, deadline: float) -> None:
        await self.open()
        actions = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        while time.monotonic() < deadline:
            action = self.rng.choices(actions, weights)[0]
            await getattr(self, action)()

    async def close(self) -> None:
        await self.http.aclose()

    # --- browse ---

    def random_filters(self) -> dict[str, str]:
        roll = self.rng.random()
        if roll < 0.3:
            return {}
        if roll < 0.5:
            return {"split": self.rng.choice(["train", "val", "test"])}
        if roll < 0.7:
            return {"state": self.rng.choice(["labelled", "unlabelled", "no_objects"])}
        if roll < 0.85:
            return {"class_id": str(self.rng.choice(self.context.class_ids))}
        return {"q": f"img{self.rng.randrange(10)}"}

    async def thumbnails(self, page: Page) -> None:
        fresh = [t for t in page.thumbs[:THUMBS_SHOWN] if t not in self.seen_thumbs]
        self.seen_thumbs.update(fresh)
        await asyncio.gather(*(self.request("media", "GET", t) for t in fresh))

    async def browse(self) -> None:
        grid = f"/projects/{PROJECT}/images"
        self.filters = self.random_filters()
        query = urlencode(self.filters)
        response = await self.request("grid", "GET", grid + (f"?{query}" if query else ""))
        if response is None or response.status_code != 200:
            return
        page = Page(response.text)
        await self.thumbnails(page)
        if self.rng.random() < 0.5:
            self.filters = self.random_filters()
            response = await self.request(
                "grid_filter", "GET", grid, params=self.filters, headers={"HX-Request": "true"}
            )
            if response is None or response.status_code != 200:
                return
            page = Page(response.text)
            await self.thumbnails(page)
        for _ in range(self.rng.randint(0, 2)):
            if page.next_url is None:
                return
            response = await self.request(
                "grid_next", "GET", page.next_url, headers={"HX-Request": "true"}
            )
            if response is None or response.status_code != 200:
                return
            page = Page(response.text)
            await self.thumbnails(page)

    # --- annotate ---

    async def annotate(self) -> None:
        query = urlencode(self.filters)
        url = f"/projects/{PROJECT}/annotate/{quote(self.current, safe='')}"
        response = await self.request("annotate", "GET", url + (f"?{query}" if query else ""))
        if response is None or response.status_code != 200:
            self.current = self.rng.choice(self.context.filenames)
            return
        data = Page(response.text).annotator
        assert data is not None, "the annotator page has no data block"
        await self.image(data["image_url"])
        labels_url = data["labels_url"]
        response = await self.request("labels_get", "GET", labels_url)
        if response is None or response.status_code != 200:
            return
        state = response.json()
        for _ in range(self.rng.choice([1, 1, 2, 3])):
            saved = await self.save(labels_url, state, self.rng.randrange(2**32))
            if saved is None:
                break
            state = saved
        following = data.get("next")
        if following and self.rng.random() < 0.8:
            self.current = following["filename"]
        else:
            self.current = self.rng.choice(self.context.filenames)

    async def image(self, url: str) -> None:
        headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
        response = await self.request("media", "GET", url, headers=headers)
        if response is not None and "etag" in response.headers:
            self.etags[url] = response.headers["etag"]

    async def save(self, url: str, state: dict[str, Any], edit: int) -> dict[str, Any] | None:
        """Save one edit of ``state``; on 409 reload and make the same edit on the fresh state."""
        for attempt in range(SAVE_TRIES):
            labels, no_objects = edited(state, random.Random(edit), len(CLASSES))
            body = {"version": state["version"], "labels": labels, "no_objects": no_objects}
            response = await self.request(
                "labels_put",
                "PUT",
                url,
                json=body,
                headers=self.write_headers(Accept="application/json"),
            )
            if response is None:
                return None
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                self.record.saved(answer)
                return answer
            if response.status_code != 409:
                return None
            self.record.conflicts.append((state["filename"], state["version"]))
            if attempt == SAVE_TRIES - 1:
                self.record.saves_given_up += 1
                return None
            self.record.retried_409 += 1
            reloaded = await self.request("labels_get", "GET", url)
            if reloaded is None or reloaded.status_code != 200:
                return None
            state = reloaded.json()
        return None

    # --- upload ---

    async def upload(self) -> None:
        files = []
        for _ in range(self.rng.randint(1, 4)):
            number = self.context.next_upload()
            data = make_jpeg(10_000_000 + number)
            name = f"up{number:06d}.jpg"
            self.context.sent[name] = sha256(data)
            files.append(("files", (name, io.BytesIO(data), "image/jpeg")))
        split = self.rng.choice(["", "", "train", "val"])
        response = await self.request(
            "upload",
            "POST",
            f"/projects/{PROJECT}/upload",
            data={"split": split},
            files=files,
            headers=self.write_headers(**{"HX-Request": "true"}),
        )
        if response is None or response.status_code != 200:
            return
        for status, name in Page(response.text).upload_rows:
            self.record.upload_rows[status] += 1
            if status in ("stored", "duplicate"):
                self.record.uploads[name] = self.context.sent[name]
                if status == "stored":
                    self.context.filenames.append(name)


def edited(
    state: dict[str, Any], rng: random.Random, classes: int
) -> tuple[list[dict[str, Any]], bool]:
    """What the annotator sends after one change to ``state``: the labels (with their ids) and
    "no objects"."""
    boxes = [
        {k: b[k] for k in ("id", "class_id", "x", "y", "width", "height")} for b in state["labels"]
    ]
    roll = rng.random()
    if roll < 0.05:
        return [], True
    if not boxes or (roll < 0.35 and len(boxes) < MAX_BOXES):
        w, h = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
        boxes.append(
            {
                "id": None,
                "class_id": rng.randrange(classes),
                "x": rng.uniform(w / 2, 1 - w / 2),
                "y": rng.uniform(h / 2, 1 - h / 2),
                "width": w,
                "height": h,
            }
        )
    elif roll < 0.5:
        del boxes[rng.randrange(len(boxes))]
    elif roll < 0.6:
        boxes[rng.randrange(len(boxes))]["class_id"] = rng.randrange(classes)
    else:
        box = boxes[rng.randrange(len(boxes))]
        half_w, half_h = box["width"] / 2, box["height"] / 2
        box["x"] = min(max(box["x"] + rng.uniform(-0.02, 0.02), half_w), 1 - half_w)
        box["y"] = min(max(box["y"] + rng.uniform(-0.02, 0.02), half_h), 1 - half_h)
    return boxes, False


@dataclass
class Context:
    """What the clients share: the project's class ids and file names, the files sent."""

    class_ids: list[int]
    filenames: list[str]
    sent: dict[str, str] = field(default_factory=dict)  # uploaded name -> sha256
    uploads: int = 0

    def next_upload(self) -> int:
        self.uploads += 1
        return self.uploads


# --- the server and the seed -----------------------------------------------------------------


def start_server(data_dir: Path, port: int, profile_to: Path | None) -> subprocess.Popen[bytes]:
    """``ydc serve`` as ``make run`` starts it, on ``port`` with ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YDC_")}
    env.update({"YDC_DATA_DIR": str(data_dir), "YDC_PORT": str(port)})
    command = [sys.executable, "-m", "app.cli", "serve"]  # what `ydc serve` runs
    if profile_to is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile_to), *command[1:]]
    return launch(command, data_dir.parent / "server.log", port, env)


async def seed(base: str, images: int, record: Record) -> Context:
    """The project, its classes and ``images`` JPEGs over the API; a third of them labelled."""
    async with httpx.AsyncClient(base_url=base, timeout=300) as http:
        http.headers["X-CSRF-Token"] = (await http.get("/api/v1/csrf")).json()["token"]
        response = await http.post("/api/v1/projects", json={"name": PROJECT, "classes": CLASSES})
        response.raise_for_status()
        classes = (await http.get(f"/api/v1/projects/{PROJECT}/classes")).json()
        class_ids = [c["id"] for c in classes]
        filenames: list[str] = []
        sent: dict[str, str] = {}
        for first in range(0, images, 50):
            files = []
            for i in range(first, min(images, first + 50)):
                data = make_jpeg(i)
                name = f"img{i:05d}.jpg"
                sent[name] = sha256(data)
                files.append(("files", (name, io.BytesIO(data), "image/jpeg")))
            response = await http.post(f"/api/v1/projects/{PROJECT}/images", files=files)
            response.raise_for_status()
            for result in response.json()["results"]:
                assert result["status"] == "stored", result
                filenames.append(result["filename"])
                record.uploads[result["filename"]] = sent[result["original_name"]]
        rng = random.Random(1)
        for name in filenames[::3]:
            url = f"/api/v1/projects/{PROJECT}/images/{quote(name, safe='')}/labels"
            state = (await http.get(url)).json()
            for _ in range(2):
                labels, no_objects = edited(state, rng, len(CLASSES))
                body = {"version": state["version"], "labels": labels, "no_objects": no_objects}
                response = await http.put(url, json=body)
                response.raise_for_status()
                state = response.json()
                record.saved(state)
    return Context(class_ids, filenames, sent)


# --- the lost-write check --------------------------------------------------------------------


def check_writes(data_dir: Path, record: Record) -> dict[str, Any]:
    """Every acknowledged upload and the last acknowledged save of each image, against the
    database (and the disk) the stopped server left."""
    db = sqlite3.connect(f"file:{data_dir / 'ydc.db'}?mode=ro", uri=True)
    (project_id,) = db.execute("SELECT id FROM project WHERE name = ?", (PROJECT,)).fetchone()
    rows = db.execute(
        "SELECT id, filename, split, sha256, version, no_objects FROM image WHERE project_id = ?",
        (project_id,),
    ).fetchall()
    by_sha: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    by_name = {}
    for row in rows:
        by_sha[row[3]].append(row)
        by_name[row[1]] = row
    folder = data_dir / "projects" / PROJECT
    lost: list[str] = []

    for name, digest in record.uploads.items():
        found = by_sha.get(digest)
        if not found:
            lost.append(f"upload {name}: no image row with its sha256")
            continue
        path = folder / "images" / found[0][2] / found[0][1]
        if not path.is_file() or sha256(path.read_bytes()) != digest:
            lost.append(f"upload {name}: {path.relative_to(data_dir)} is not its bytes")
    lost_uploads = len(lost)

    last: dict[str, Save] = {}
    for save in record.saves:
        if save.filename not in last or save.version >= last[save.filename].version:
            last[save.filename] = save
    unverifiable = 0
    label_files_differing = 0
    for name, save in last.items():
        row = by_name.get(name)
        if row is None:
            lost.append(f"save {name} v{save.version}: the image row is gone")
            continue
        image_id, _, split, _, version, no_objects = row
        if version > save.version:
            unverifiable += 1  # a later save was applied whose answer never arrived
            continue
        stored = sorted(
            db.execute(
                "SELECT l.id, c.position, l.x, l.y, l.w, l.h FROM label l "
                "JOIN project_class c ON c.id = l.class_id "
                "WHERE l.image_id = ? AND l.status = 'accepted'",
                (image_id,),
            ).fetchall()
        )
        if version < save.version:
            lost.append(f"save {name}: acknowledged v{save.version}, database v{version}")
        elif bool(no_objects) != save.no_objects or stored != sorted(save.labels):
            lost.append(f"save {name} v{save.version}: the database holds other labels")
        else:
            label_file = folder / "labels" / split / (Path(name).stem + ".txt")
            text = label_file.read_text() if label_file.exists() else ""
            expected = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for _, c, x, y, w, h in stored]
            if sorted(text.splitlines()) != sorted(expected):
                label_files_differing += 1
    db.close()
    return {
        "acknowledged_upload_files": len(record.uploads),
        "acknowledged_saves": len(record.saves),
        "images_with_saves_checked": len(last),
        "lost_uploads": lost_uploads,
        "lost_saves": len(lost) - lost_uploads,
        "lost_writes": len(lost),
        "lost_examples": lost[:10],
        "saves_unverifiable": unverifiable,
        "label_files_differing": label_files_differing,
    }


def server_log(path: Path) -> dict[str, Any]:
    """What the server logged at WARNING or above, and the signs of SQLite contention."""
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    notable = [
        line
        for line in lines
        if re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b|locked|Exception", line)
    ]
    return {
        "lines_warning_or_worse": len(notable),
        "tracebacks": text.count("Traceback"),
        "database_is_locked": text.count("database is locked"),
        "first": list(dict.fromkeys(notable))[:8],
    }


# --- one run ---------------------------------------------------------------------------------


def figures(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
    }


async def drive(
    base: str, args: argparse.Namespace, server: psutil.Process
) -> tuple[Record, Record, dict[str, float]]:
    """Seed, then run the clients; the seed's record, the clients' record, and the seconds
    the clients ran with the CPU seconds the server and the clients spent meanwhile."""
    seeded, record = Record(), Record()
    context = await seed(base, args.images, seeded)
    browsers = [
        Browser(base, record, random.Random(args.seed * 1000 + i), context)
        for i in range(args.clients)
    ]
    server_cpu, own_cpu = cpu_seconds(server), time.process_time()
    start = time.monotonic()
    try:
        await asyncio.gather(*(b.run(start + args.seconds) for b in browsers))
    finally:
        await asyncio.gather(*(b.close() for b in browsers))
    times = {
        "elapsed": time.monotonic() - start,
        "server_cpu": cpu_seconds(server) - server_cpu,
        "clients_cpu": time.process_time() - own_cpu,
    }
    return seeded, record, times


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of ``process`` and its children so far."""
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def one_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    port = free_port()
    profile_to = workdir / "server.prof" if args.profile else None
    server = start_server(data_dir, port, profile_to)
    try:
        base = f"http://127.0.0.1:{port}"
        seeded, record, times = asyncio.run(drive(base, args, psutil.Process(server.pid)))
    finally:
        stop_server(server)
    if profile_to is not None and profile_to.exists():
        print_profile(profile_to)
    requests = sum(len(v) for v in record.latencies.values())
    statuses = Counter[str]()
    for counts in record.statuses.values():
        statuses.update(counts)
    writes = sum(sum(record.statuses[k].values()) for k in WRITES)
    writes_ok = sum(n for k in WRITES for s, n in record.statuses[k].items() if s.startswith("2"))
    non_2xx = writes - writes_ok
    # The seed's writes are checked with the clients' but left out of the figures.
    checked = Record(
        saves=seeded.saves + record.saves, uploads={**seeded.uploads, **record.uploads}
    )
    acknowledged = {(save.filename, save.version) for save in checked.saves}
    elapsed = times["elapsed"]
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        # While the clients ran, on CPUs the server and the clients (one process) share.
        "server_cpu_s": round(times["server_cpu"], 1),
        "clients_cpu_s": round(times["clients_cpu"], 1),
        "kinds": {
            kind: {**figures(record.latencies[kind]), "statuses": dict(record.statuses[kind])}
            for kind in KINDS
        },
        "5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "no_answer": sum(record.transport_errors.values()),
        "no_answer_by_kind": dict(record.transport_errors),
        "gets_resent_after_closed_connection": dict(record.gets_resent),
        "writes": writes,
        "writes_non_2xx": non_2xx,
        "writes_non_2xx_pct": round(100 * non_2xx / writes, 2) if writes else 0.0,
        "writes_409_then_retried": record.retried_409,
        # A 409 is a real conflict when another client's acknowledged save is the one that
        # took the image past the version sent (it answered that version + 1).
        "writes_409_after_another_clients_save": sum(
            (name, version + 1) in acknowledged for name, version in record.conflicts
        ),
        "saves_given_up_after_409s": record.saves_given_up,
        "upload_files": dict(record.upload_rows),
        **check_writes(data_dir, checked),
        "server_log": server_log(workdir / "server.log"),
    }


def print_profile(path: Path) -> None:
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--images", type=int, default=300, help="images seeded before the run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the clients' random choices")
    parser.add_argument("--data-dir", type=Path, help="where the temp data dirs go")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    runs = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
            runs.append(one_run(args, Path(tmp)))
        done = runs[-1]
        print(
            f"run {run + 1}/{args.runs}: {done['requests_per_s']} requests/s, "
            f"{done['5xx']} x 5xx, {done['writes_non_2xx_pct']}% non-2xx writes, "
            f"{done['lost_writes']} lost writes",
            file=sys.stderr,
        )
    report: dict[str, Any] = {
        "clients": args.clients,
        "seconds": args.seconds,
        "images_seeded": args.images,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "median_of_runs": {
            "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
            "writes_non_2xx_pct": statistics.median(r["writes_non_2xx_pct"] for r in runs),
            "kinds": {
                kind: {
                    figure: statistics.median(r["kinds"][kind].get(figure, 0) for r in runs)
                    for figure in ("count", "p50_ms", "p95_ms")
                }
                for kind in KINDS
            },
        },
        "total_5xx": sum(r["5xx"] for r in runs),
        "total_no_answer": sum(r["no_answer"] for r in runs),
        "total_lost_writes": sum(r["lost_writes"] for r in runs),
        "per_run": runs,
    }
    report["goal_0_5xx"] = report["total_5xx"] == 0
    report["goal_0_lost_writes"] = report["total_lost_writes"] == 0
    report["goal_non_2xx_writes_under_1pct"] = all(
        r["writes_non_2xx_pct"] < GOAL_NON_2XX_WRITES_PCT for r in runs
    )
    print(json.dumps(report, indent=2))
    failed = report["total_5xx"] or report["total_no_answer"] or report["total_lost_writes"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
