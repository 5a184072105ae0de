"""``/media/…`` serves the bytes under ``storage/projects/`` read-only, and nothing else.

httpx normalises ``..`` out of a URL before sending it, so the escape attempts here are sent to
the ASGI app directly, as a server hands them over: ``raw_path`` as it came, ``path``
percent-decoded but not normalised (what uvicorn does).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.datastructures import Headers
from starlette.types import Message, Scope

from app.config import Settings
from app.domain.stores import Stores
from app.main import create_app
from app.web.media import MediaFiles
from tests.conftest import encode, make_image


@dataclass
class Answer:
    status: int
    headers: Headers
    body: bytes
    scope: Scope


async def _raw(
    app: FastAPI, raw_path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Answer:
    """Send ``raw_path`` (bytes as typed, ``%`` escapes and ``..`` kept) straight to the app."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    messages: list[Message] = []
    requested = False
    done = anyio.Event()

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # a file response listens for the client going away meanwhile
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return Answer(start["status"], Headers(raw=start["headers"]), body, scope)


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths that reached the /media handler (below /media), as it saw them."""
    seen: list[str] = []
    original = MediaFiles.get_path

    def recording(self: MediaFiles, scope: Scope) -> str:
        seen.append(get_route_path(scope))
        return original(self, scope)

    monkeypatch.setattr(MediaFiles, "get_path", recording)
    return seen


def _stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


async def _project_with_image(
    app: FastAPI, client: httpx.AsyncClient, filename: str = "a.png", ext: str = ".png"
) -> tuple[str, bytes]:
    """Project ``birds`` with one train image; its stored name and bytes."""
    created = await client.post("/api/v1/projects", json={"name": "birds", "classes": ["gull"]})
    assert created.status_code == 201
    data = encode(make_image(), ext)
    info = await _stores(app).image.save_file("birds", "train", filename, io.BytesIO(data))
    return info.filename, data


# --- serving --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "ext", "content_type"),
    [("a.png", ".png", "image/png"), ("b.jpg", ".jpg", "image/jpeg")],
)
async def test_an_image_is_served_with_its_exact_bytes_and_type(
    app: FastAPI, client: httpx.AsyncClient, filename: str, ext: str, content_type: str
) -> None:
    stored, data = await _project_with_image(app, client, filename, ext)

    response = await client.get(f"/media/birds/images/train/{stored}")

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_image_is_revalidated_by_its_etag(app: FastAPI, client: httpx.AsyncClient) -> None:
    stored, _ = await _project_with_image(app, client)
    url = f"/media/birds/images/train/{stored}"

    first = await client.get(url)
    again = await client.get(url, headers={"if-none-match": first.headers["etag"]})

    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["etag"]
    assert again.status_code == 304
    assert again.content == b""


async def test_a_changed_image_gets_a_new_etag_and_its_new_bytes(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    stored, _ = await _project_with_image(app, client)
    url = f"/media/birds/images/train/{stored}"
    old_etag = (await client.get(url)).headers["etag"]
    path = projects_dir / "birds" / "images" / "train" / stored
    new_bytes = encode(make_image(width=80, seed=9))
    path.write_bytes(new_bytes)

    response = await client.get(url, headers={"if-none-match": old_etag})

    assert response.status_code == 200
    assert response.content == new_bytes


async def test_head_answers_the_headers_without_the_bytes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stored, data = await _project_with_image(app, client)

    response = await client.head(f"/media/birds/images/train/{stored}")

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(data)
    assert response.headers["content-type"] == "image/png"


async def test_a_thumbnail_is_cached_for_good(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path
) -> None:
    await _project_with_image(app, client)
    sha = "ab" * 32
    thumb = projects_dir / "birds" / "thumbs" / f"{sha}.jpg"
    thumb.parent.mkdir(parents=True, exist_ok=True)
    thumb.write_bytes(encode(make_image(), ".jpg"))

    response = await client.get(f"/media/birds/thumbs/{sha}.jpg")

    assert response.status_code == 200
    assert response.content == thumb.read_bytes()
    assert "immutable" in response.headers["cache-control"]


async def test_only_a_projects_thumbs_folder_is_cached_for_good(tmp_path: Path) -> None:
    # The data dir's own path may hold "thumbs"; an image there is still revalidated.
    settings = Settings(
        data_dir=tmp_path / "thumbs" / "data", run_tasks=False, allowed_hosts=["testserver"]
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            token = (await http.get("/api/v1/csrf")).json()["token"]
            http.headers["X-CSRF-Token"] = token
            stored, data = await _project_with_image(app, http)
            nested = settings.data_dir / "projects" / "birds" / "images" / "thumbs" / "x.jpg"
            nested.parent.mkdir(parents=True)
            nested.write_bytes(data)

            image = await http.get(f"/media/birds/images/train/{stored}")
            not_a_thumb = await http.get("/media/birds/images/thumbs/x.jpg")

    assert image.status_code == 200
    assert image.headers["cache-control"] == "no-cache"
    assert not_a_thumb.headers["cache-control"] == "no-cache"


async def test_a_missing_file_or_a_folder_is_not_found(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _project_with_image(app, client)

    for path in ("/media/birds/images/train/nope.png", "/media/birds/", "/media/"):
        response = await client.get(path)
        assert response.status_code == 404, path


async def test_media_is_not_found_before_any_project_exists(client: httpx.AsyncClient) -> None:
    response = await client.get("/media/birds/images/train/a.png")

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_media_is_read_only(
    app: FastAPI, client: httpx.AsyncClient, projects_dir: Path, method: str
) -> None:
    stored, data = await _project_with_image(app, client)
    url = f"/media/birds/images/train/{stored}"

    response = await client.request(method, url, content=b"overwritten")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as bare:
        unarmed = await bare.request(method, url, content=b"overwritten")

    assert response.status_code == 405
    assert unarmed.status_code in (403, 405)
    assert (projects_dir / "birds" / "images" / "train" / stored).read_bytes() == data


# --- never anything outside storage/projects ------------------------------------------------


@pytest.fixture
async def secrets(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> AsyncIterator[dict[str, bytes]]:
    """A project, and secret files next to and above the projects folder."""
    await _project_with_image(app, client)
    planted = {
        "secret": settings.data_dir / "secret.txt",
        "outside": settings.data_dir.parent / "outside.txt",
    }
    contents = {}
    for key, path in planted.items():
        contents[key] = f"TOP-SECRET-{key}-{uuid.uuid4().hex}".encode()
        path.write_bytes(contents[key])
    yield contents


def _leads_to(folder: Path, route: str, file: Path) -> bool:
    """Whether ``route``, joined to ``folder`` with no check, names ``file`` (which exists)."""
    joined = os.path.normpath(os.path.join(folder, *route.split("/")))
    return file.exists() and joined == os.path.normpath(file)


ESCAPES = [
    # (raw path, the file it names once resolved, relative to the data dir; None: not ours)
    ("/media/../secret.txt", "secret.txt"),
    ("/media/%2e%2e/secret.txt", "secret.txt"),
    ("/media/.%2e/secret.txt", "secret.txt"),
    ("/media/%2E%2E/%2E%2E/outside.txt", "../outside.txt"),
    ("/media/birds/..%2f..%2fsecret.txt", "secret.txt"),
    ("/media/..%2fsecret.txt", "secret.txt"),
    ("/media/..%2F..%2Foutside.txt", "../outside.txt"),
    ("/media/birds/images/train/../../../../secret.txt", "secret.txt"),
    ("/media/birds/images/train/..%2f..%2f..%2f..%2fsecret.txt", "secret.txt"),
    ("/media/birds/%2e%2e/%2e%2e/%2e%2e/outside.txt", "../outside.txt"),
    ("/media/../ydc.db", "ydc.db"),
    ("/media/%2fetc%2fpasswd", None),
    ("/media//etc/passwd", None),
    ("/media///etc/passwd", None),
    ("/media/%2F%2Fetc%2Fpasswd", None),
    ("/media/..%5csecret.txt", None),
    ("/media/%252e%252e/secret.txt", None),
    ("/media/birds/images/train/a.png%00/../../../../secret.txt", None),
]


@pytest.mark.parametrize(("raw_path", "target"), ESCAPES, ids=[e[0] for e in ESCAPES])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_no_path_reaches_a_file_outside_the_projects_folder(
    app: FastAPI,
    settings: Settings,
    secrets: dict[str, bytes],
    reached: list[str],
    raw_path: str,
    target: str | None,
    method: str,
) -> None:
    answer = await _raw(app, raw_path, method)

    # What reached the app kept its dots and escapes, and reached the /media handler.
    assert answer.scope["raw_path"] == raw_path.encode()
    assert reached, "the request never reached /media"
    route = reached[-1]
    if target is not None:
        assert ".." in route
        # Without the check, this path would name that very file.
        assert _leads_to(settings.data_dir / "projects", route, settings.data_dir / target)
    assert answer.status in (400, 404), (raw_path, answer.status)
    for secret in secrets.values():
        assert secret not in answer.body
    assert b"root:" not in answer.body
    assert b"SQLite format" not in answer.body


async def test_a_path_that_escapes_before_media_is_not_served(
    app: FastAPI, secrets: dict[str, bytes]
) -> None:
    for raw_path in ("//media/../secret.txt", "/static/../../storage/secret.txt", "//etc/passwd"):
        answer = await _raw(app, raw_path)

        assert answer.status in (400, 404), raw_path
        assert all(secret not in answer.body for secret in secrets.values())
        assert b"root:" not in answer.body


@pytest.mark.parametrize(
    "link_path",
    ["birds/images/train/link.png", "birds/thumbs/link.jpg", "birds/link.txt"],
)
async def test_a_symlink_in_a_project_pointing_outside_is_not_served(
    app: FastAPI,
    settings: Settings,
    projects_dir: Path,
    secrets: dict[str, bytes],
    link_path: str,
) -> None:
    link = projects_dir / link_path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(settings.data_dir / "secret.txt")
    assert link.read_bytes() == secrets["secret"]

    answer = await _raw(app, f"/media/{link_path}")

    assert answer.status == 404
    assert secrets["secret"] not in answer.body


async def test_a_symlinked_folder_pointing_outside_is_not_served(
    app: FastAPI, settings: Settings, projects_dir: Path, secrets: dict[str, bytes]
) -> None:
    (projects_dir / "birds" / "escape").symlink_to(settings.data_dir)
    assert (projects_dir / "birds" / "escape" / "secret.txt").exists()

    answer = await _raw(app, "/media/birds/escape/secret.txt")

    assert answer.status == 404
    assert secrets["secret"] not in answer.body


async def test_a_symlink_loop_is_not_found_rather_than_a_server_error(
    app: FastAPI, projects_dir: Path, secrets: dict[str, bytes]
) -> None:
    loop = projects_dir / "birds" / "images" / "train" / "loop.png"
    loop.symlink_to(loop)

    answer = await _raw(app, "/media/birds/images/train/loop.png")

    assert answer.status == 404


async def test_httpx_would_have_normalised_the_dots_away(client: httpx.AsyncClient) -> None:
    # Why the escapes above bypass httpx: through it, "/media/../secret.txt" never leaves as such.
    request = client.build_request("GET", "http://testserver/media/../secret.txt")

    assert request.url.raw_path == b"/secret.txt"
