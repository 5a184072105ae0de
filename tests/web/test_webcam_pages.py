"""Webcam capture over HTTP: the form that opens a session, the capture page, the frames
endpoint (stored and counted; refused without the CSRF token, into an ended session, for a file
that is no image or too large, with nothing stored), the session's page and the image grid's
``?session=`` filter."""

from __future__ import annotations

import io
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.domain.models import ImageFilter, SessionSource
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.services.test_webcam_capture import scene
from tests.web.htmltree import parse


def stores_of(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


def frame(data: io.BytesIO | bytes, mode: str = "manual") -> dict[str, Any]:
    raw = data.getvalue() if isinstance(data, io.BytesIO) else data
    return {"files": {"file": ("frame.jpg", raw, "image/jpeg")}, "data": {"mode": mode}}


async def start(client: httpx.AsyncClient, **fields: str) -> int:
    response = await client.post("/api/v1/projects/desk/sessions/webcam", data=fields)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source"] == "webcam" and body["status"] == "in_progress"
    return int(body["id"])


async def test_the_webcam_form_opens_a_session_and_its_capture_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("desk", ["mug"])
    for url in ("/projects/desk", "/projects/desk/sessions"):
        form = parse((await client.get(url)).text).find("form", class_="webcam-form")
        assert form.attrs["action"] == "/projects/desk/sessions/webcam"
        names = {e.attrs.get("name") for e in form.iter() if e.tag in ("input", "select")}
        assert {"near_duplicate_bits", "split", "autolabel", "csrf_token"} <= names
        checkbox = form.find("input", type="checkbox")
        assert checkbox.attrs["name"] == "autolabel"
        label = form.find("label", for_="webcam-autolabel").text()
        assert label == "Auto-label frames as they arrive with the active model"

    response = await client.post(
        "/projects/desk/sessions/webcam",
        data={
            "csrf_token": client.cookies["ydc_csrf"],
            "near_duplicate_bits": "4",
            "split": "val",
            "autolabel": "on",
        },
    )

    assert response.status_code == 303
    (session,) = await stores.session.list("desk")
    assert response.headers["location"] == f"/sessions/{session.id}/webcam"
    assert session.source == SessionSource.WEBCAM
    assert session.settings == {"near_duplicate_bits": 4, "split": "val", "autolabel": True}
    assert session.log[0].startswith("Webcam session started: frames go into val")

    full = await client.get(f"/sessions/{session.id}/webcam")
    assert full.headers["vary"] == "HX-Request"
    page = parse(full.text)
    assert page.find("script", src="/static/webcam.js")
    root = page.find("div", id="webcam")
    assert root.attrs["data-frames-url"] == f"/api/v1/sessions/{session.id}/frames"
    assert root.attrs["data-status"] == "in_progress"
    assert page.find("video", id="webcam-video")
    capture = page.find("button", id="webcam-capture")
    assert capture.find("kbd").text() == "Space"
    assert capture.attrs["aria-keyshortcuts"] == "Space C"
    assert page.find("button", id="webcam-interval").text() == "Start"
    assert page.find("input", id="webcam-seconds").attrs["value"] == "2"
    assert page.find("dd", id="webcam-count-kept").text() == "0"
    end = page.find("form", class_="webcam-end")
    assert end.attrs["action"] == f"/sessions/{session.id}/webcam/end"
    assert page.find("p", id="webcam-strip-empty").text() == "No frames kept yet."
    fragment = await client.get(f"/sessions/{session.id}/webcam", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert parse(fragment.text).find("div", id="webcam")


async def test_frames_posted_are_stored_counted_and_shown_on_the_session_page_and_grid(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("desk", ["mug"])
    await stores.image.save_file("desk", "train", "other.png", io.BytesIO(encode(make_image())))
    session_id = await start(client, near_duplicate_bits="10", split="train")
    url = f"/api/v1/sessions/{session_id}/frames"

    first = await client.post(url, **frame(scene(1)))
    near = await client.post(url, **frame(scene(1, grain=1), "interval"))
    manual = await client.post(url, **frame(scene(1, grain=2)))

    assert [r.status_code for r in (first, near, manual)] == [200, 200, 200]
    assert first.json()["outcome"] == "kept"
    assert first.json()["thumbnail"].startswith("/media/desk/thumbs/")
    assert near.json()["outcome"] == "skipped_near_duplicate"
    assert near.json()["filename"] is None
    assert manual.json()["outcome"] == "kept"
    assert manual.json()["session"]["counts"] == {
        "frames_seen": 3,
        "kept": 2,
        "skipped_near_duplicate": 1,
        "skipped_duplicate": 0,
    }
    frames = await stores.image.search("desk", ImageFilter(session_id=session_id))
    assert [f.filename for f in frames] == ["webcam1-00001.jpg", "webcam1-00003.jpg"]
    # Another session's frame is not one of them.
    other = await start(client)
    await client.post(f"/api/v1/sessions/{other}/frames", **frame(scene(5)))

    page = parse((await client.get(f"/sessions/{session_id}")).text)
    assert len(page.find("ul", class_="session-thumbs").find_all("img")) == 2
    assert page.find("a", href=f"/projects/desk/images?session={session_id}")
    assert page.find("a", href=f"/sessions/{session_id}/webcam").text() == "Open the webcam page"
    listing = parse((await client.get("/projects/desk/sessions")).text)
    row = listing.find("tr", id=f"session-{session_id}")
    assert row.find("a", class_="session-webcam-link").attrs["href"].endswith("/webcam")
    assert row.find("td", class_="count-kept").text() == "2"
    webcam_page = parse((await client.get(f"/sessions/{session_id}/webcam")).text)
    strip = webcam_page.find("ol", id="webcam-strip").find_all("img")
    assert [img.attrs["alt"] for img in strip] == ["webcam1-00003.jpg", "webcam1-00001.jpg"]

    grid = parse((await client.get(f"/projects/desk/images?session={session_id}")).text)
    tiles = [li.attrs["data-filename"] for li in grid.find_all("li", class_="tile")]
    assert tiles == ["webcam1-00001.jpg", "webcam1-00003.jpg"]
    api = await client.get(f"/api/v1/sessions/{session_id}")
    assert api.json()["counts"]["kept"] == 2


async def test_a_frame_without_the_csrf_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stores_of(app).dataset.create("desk", ["mug"])
    session_id = await start(client)

    response = await client.post(
        f"/api/v1/sessions/{session_id}/frames",
        headers={"X-CSRF-Token": "x" * 43},
        **frame(scene(1)),
    )

    assert response.status_code == 403
    assert await stores_of(app).image.count("desk") == 0


async def test_an_ended_session_refuses_frames_with_409(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("desk", ["mug"])
    session_id = await start(client)

    ended = await client.post(
        f"/sessions/{session_id}/webcam/end", data={"csrf_token": client.cookies["ydc_csrf"]}
    )
    refused = await client.post(
        f"/api/v1/sessions/{session_id}/frames",
        **frame(scene(1)),
    )

    assert ended.status_code == 303
    assert ended.headers["location"] == f"/sessions/{session_id}"
    assert refused.status_code == 409
    assert "has ended" in refused.json()["detail"]
    assert await stores.image.count("desk") == 0
    assert (await stores.session.get(session_id)).status == "completed"
    page = parse((await client.get(f"/sessions/{session_id}/webcam")).text)
    assert "has ended" in page.find("section", class_="webcam-closed").text()
    assert not page.find_all("video")
    detail = parse((await client.get(f"/sessions/{session_id}")).text)
    assert not detail.find_all("a", href=f"/sessions/{session_id}/webcam")
    again = await client.post(f"/api/v1/sessions/{session_id}/webcam/end")
    assert again.status_code == 200 and again.json()["status"] == "completed"


async def test_a_frame_that_is_no_image_or_malformed_is_refused_with_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stores = stores_of(app)
    await stores.dataset.create("desk", ["mug"])
    session_id = await start(client)
    url = f"/api/v1/sessions/{session_id}/frames"

    text = await client.post(url, **frame(b"hello, not a picture"))
    cut = await client.post(url, **frame(scene(1).getvalue()[:300]))
    no_file = await client.post(url, data={"mode": "manual", "file": "text"})
    bad_mode = await client.post(url, **frame(scene(1), "burst"))
    not_multipart = await client.post(url, json={"file": "x"})
    video = await stores.session.create("desk", SessionSource.VIDEO, {})
    wrong_source = await client.post(
        f"/api/v1/sessions/{video.id}/frames",
        **frame(scene(1)),
    )

    assert text.status_code == 422 and "not an image" in text.json()["detail"]
    assert cut.status_code == 422 and "corrupt" in cut.json()["detail"]
    assert no_file.status_code == 422 and "file" in no_file.json()["detail"]
    assert bad_mode.status_code == 422 and "manual or interval" in bad_mode.json()["detail"]
    assert not_multipart.status_code == 422
    assert wrong_source.status_code == 404
    assert await stores.image.count("desk") == 0
    assert (await stores.session.get(session_id)).counts.get("frames_seen", 0) == 0


async def test_a_frame_over_the_upload_limit_is_refused_before_it_is_read(
    settings: Settings,
) -> None:
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from tests.conftest import arm_csrf

    small = create_app(settings.model_copy(update={"max_upload_bytes": 2000}))
    async with LifespanManager(small):
        transport = httpx.ASGITransport(app=small)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            await arm_csrf(http)
            await stores_of(small).dataset.create("desk", ["mug"])
            session_id = await start(http)
            big = scene(1).getvalue() + b"\0" * (2**20 + 4000)
            response = await http.post(
                f"/api/v1/sessions/{session_id}/frames",
                **frame(big),
            )
            assert response.status_code == 413, response.text
            assert "YDC_MAX_UPLOAD_BYTES" in response.json()["detail"]
            # Under the request limit but over the image limit: refused by the store.
            over = await http.post(
                f"/api/v1/sessions/{session_id}/frames",
                **frame(scene(1).getvalue() + b"\0" * 3000),
            )
            assert over.status_code == 422, over.text
            assert "upload limit" in over.json()["detail"]
            assert await stores_of(small).image.count("desk") == 0


async def test_a_frame_with_a_blank_mode_is_a_manual_capture_and_the_document_allows_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await stores_of(app).dataset.create("desk", ["mug"])
    session_id = await start(client)

    response = await client.post(f"/api/v1/sessions/{session_id}/frames", **frame(scene(1), ""))

    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "manual"
    document = (await client.get("/openapi.json")).json()
    post = document["paths"]["/api/v1/sessions/{session_id}/frames"]["post"]
    schema = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["mode"]["enum"] == ["manual", "interval", ""]
