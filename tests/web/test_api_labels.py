"""The labels JSON API: an image's labels and suggestions with its version, saves that never
lose an update (409 on a stale version), 422s that change nothing, suggestions added, imported,
accepted and rejected, and the project-wide bulk accept."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.domain.models import Annotation
from app.domain.stores import Stores
from tests.conftest import encode, make_image
from tests.web.openapi import assert_documented_error

PROJECT = "labels"
WIDTH, HEIGHT = 100, 50
BASE = f"/api/v1/projects/{PROJECT}"
IMAGE = f"{BASE}/images/a.png"


@pytest.fixture
def app_stores(app: FastAPI) -> Stores:
    return app.state.stores  # type: ignore[no-any-return]


@pytest.fixture
async def image(app_stores: Stores) -> str:
    """``a.png`` (100 x 50) in train of a project with the classes cat, dog, bird."""
    await app_stores.dataset.create(PROJECT, ["cat", "dog", "bird"])
    data = encode(make_image(WIDTH, HEIGHT, 1), ".png")
    info = await app_stores.image.save_file(PROJECT, "train", "a.png", io.BytesIO(data))
    return info.filename


@pytest.fixture
def mirror(settings: Settings) -> Path:
    """Where ``a.png``'s label file lives."""
    return settings.data_dir / "projects" / PROJECT / "labels" / "train" / "a.txt"


def contents(path: Path) -> str | None:
    """The label file's text, ``None`` when there is no file."""
    return path.read_text() if path.exists() else None


def size_and_mtime(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def rows(settings: Settings) -> list[tuple[Any, ...]]:
    """Every label row of the database: (id, status, source, confidence), in id order."""
    with sqlite3.connect(settings.data_dir / "ydc.db") as conn:
        return conn.execute(
            "SELECT id, status, source, confidence FROM label ORDER BY id"
        ).fetchall()


def label(
    class_id: int = 0,
    x: float = 0.5,
    y: float = 0.5,
    w: float = 0.2,
    h: float = 0.2,
    id: int | None = None,
) -> dict[str, Any]:
    return {"id": id, "class_id": class_id, "x": x, "y": y, "width": w, "height": h}


def boxes(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(b["class_id"], b["x"], b["y"], b["width"], b["height"]) for b in items]


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(f"{IMAGE}/labels")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def suggest(client: httpx.AsyncClient, *items: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{IMAGE}/suggestions", json={"suggestions": list(items)})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- get and put ----------------------------------------------------------------------------


async def test_an_unlabelled_image_answers_its_size_version_and_no_labels(
    client: httpx.AsyncClient, image: str
) -> None:
    body = await state(client)

    assert body == {
        "filename": "a.png",
        "split": "train",
        "width": WIDTH,
        "height": HEIGHT,
        "version": 0,
        "no_objects": False,
        "labels": [],
        "suggestions": [],
    }


async def test_a_save_answers_the_new_version_and_the_ids_and_writes_the_mirror(
    client: httpx.AsyncClient, image: str, mirror: Path
) -> None:
    response = await client.put(
        f"{IMAGE}/labels", json={"version": 0, "labels": [label(0, x=0.25), label(2, x=0.75)]}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert boxes(body["labels"]) == [(0, 0.25, 0.5, 0.2, 0.2), (2, 0.75, 0.5, 0.2, 0.2)]
    assert all(isinstance(b["id"], int) for b in body["labels"])
    assert [(b["source"], b["confidence"], b["model"]) for b in body["labels"]] == [
        ("manual", None, None),
        ("manual", None, None),
    ]
    assert body == await state(client)
    assert contents(mirror) == (
        "0 0.250000 0.500000 0.200000 0.200000\n2 0.750000 0.500000 0.200000 0.200000\n"
    )


async def test_a_label_sent_back_with_its_id_keeps_its_id(
    client: httpx.AsyncClient, image: str
) -> None:
    first = await client.put(f"{IMAGE}/labels", json={"version": 0, "labels": [label(0)]})
    (saved,) = first.json()["labels"]

    moved = await client.put(
        f"{IMAGE}/labels",
        json={"version": 1, "labels": [label(1, x=0.4, id=saved["id"]), label(2, x=0.8)]},
    )

    body = moved.json()
    assert body["labels"][0]["id"] == saved["id"]
    assert boxes(body["labels"]) == [(1, 0.4, 0.5, 0.2, 0.2), (2, 0.8, 0.5, 0.2, 0.2)]


async def test_two_saves_with_the_same_version_the_second_gets_409_and_nothing_is_lost(
    client: httpx.AsyncClient, image: str, mirror: Path
) -> None:
    version = (await state(client))["version"]

    first = await client.put(f"{IMAGE}/labels", json={"version": version, "labels": [label(0)]})
    second = await client.put(
        f"{IMAGE}/labels", json={"version": version, "labels": [label(1, x=0.3)]}
    )

    assert first.status_code == 200
    assert second.status_code == 409
    assert "reload" in second.json()["detail"]
    after = await state(client)
    assert after["version"] == version + 1
    assert after["labels"] == first.json()["labels"]
    assert contents(mirror) == "0 0.500000 0.500000 0.200000 0.200000\n"


async def test_suggestions_added_between_load_and_save_stay_pending_and_the_save_succeeds(
    client: httpx.AsyncClient, image: str
) -> None:
    loaded = await state(client)
    added = await suggest(client, {**label(2, x=0.8), "confidence": 0.9})
    assert added["version"] == loaded["version"]  # background suggestions never bump it

    response = await client.put(
        f"{IMAGE}/labels", json={"version": loaded["version"], "labels": [label(0)]}
    )

    assert response.status_code == 200
    body = response.json()
    assert boxes(body["labels"]) == [(0, 0.5, 0.5, 0.2, 0.2)]
    assert body["suggestions"] == added["suggestions"]


BAD_BODIES: dict[str, Any] = {
    "centre-outside": {"version": 1, "labels": [label(0, x=1.2, w=0.1)]},
    "corner-outside": {"version": 1, "labels": [label(0, x=0.95, w=0.2)]},
    "corner-above": {"version": 1, "labels": [label(0, y=0.05, h=0.2)]},
    "negative-width": {"version": 1, "labels": [label(0, w=-0.2)]},
    "zero-height": {"version": 1, "labels": [label(0, h=0.0)]},
    "under-a-pixel": {"version": 1, "labels": [label(0, w=0.5 / WIDTH)]},
    "unknown-class": {"version": 1, "labels": [label(3)]},
    "negative-class": {"version": 1, "labels": [label(-1)]},
    "class-true": {"version": 1, "labels": [{**label(0), "class_id": True}]},
    "missing-version": {"labels": [label(1)]},
    "version-text": {"version": "1", "labels": [label(1)]},
    "missing-labels": {"version": 1},
    "unknown-reject": {"version": 1, "labels": [label(1)], "reject": [999_999]},
    "boxes-and-no-objects": {"version": 1, "labels": [label(1)], "no_objects": True},
}
RAW_BODIES = {
    "nan": b'{"version": 1, "labels": [{"class_id": 1, "x": NaN, "y": 0.5, "width": 0.2, '
    b'"height": 0.2}]}',
    "infinity": b'{"version": 1, "labels": [{"class_id": 1, "x": 0.5, "y": 0.5, "width": '
    b'Infinity, "height": 0.2}]}',
    "huge-exponent": b'{"version": 1, "labels": [{"class_id": 1, "x": 0.5, "y": 0.5, '
    b'"width": 1e999, "height": 0.2}]}',
    "not-json": b'{"version": 1, "labels": [',
}


@pytest.mark.parametrize("case", [*BAD_BODIES, *RAW_BODIES])
async def test_an_invalid_save_gets_422_and_changes_nothing(
    client: httpx.AsyncClient, image: str, mirror: Path, settings: Settings, case: str
) -> None:
    await client.put(f"{IMAGE}/labels", json={"version": 0, "labels": [label(0)]})
    await suggest(client, {**label(2, x=0.8), "confidence": 0.9})
    before = await state(client)
    before_rows, before_mirror = rows(settings), contents(mirror)

    if case in RAW_BODIES:
        response = await client.put(
            f"{IMAGE}/labels",
            content=RAW_BODIES[case],
            headers={"content-type": "application/json"},
        )
    else:
        response = await client.put(f"{IMAGE}/labels", json=BAD_BODIES[case])

    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert await state(client) == before
    assert rows(settings) == before_rows
    assert contents(mirror) == before_mirror


async def test_saving_an_unknown_image_or_project_gets_404(
    client: httpx.AsyncClient, image: str
) -> None:
    body = {"version": 0, "labels": [label(0)]}

    assert (await client.put(f"{BASE}/images/b.png/labels", json=body)).status_code == 404
    assert (
        await client.put("/api/v1/projects/nope/images/a.png/labels", json=body)
    ).status_code == 404
    assert (await client.get(f"{BASE}/images/b.png/labels")).status_code == 404
    assert (await client.get(f"{BASE}/images/b.png/suggestions")).status_code == 404
    assert (await state(client))["version"] == 0


async def test_a_save_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, image: str
) -> None:
    response = await client.put(
        f"{IMAGE}/labels",
        json={"version": 0, "labels": [label(0)]},
        headers={"X-CSRF-Token": ""},
    )

    assert response.status_code == 403
    assert (await state(client))["labels"] == []


# --- no objects -----------------------------------------------------------------------------


async def test_no_objects_marks_the_image_rejects_its_suggestions_and_writes_an_empty_file(
    client: httpx.AsyncClient, image: str, mirror: Path, settings: Settings
) -> None:
    await client.put(f"{IMAGE}/labels", json={"version": 0, "labels": [label(0)]})
    (suggestion,) = (await suggest(client, {**label(1), "confidence": 0.6}))["suggestions"]

    response = await client.put(
        f"{IMAGE}/labels", json={"version": 1, "labels": [], "no_objects": True}
    )

    body = response.json()
    assert (response.status_code, body["version"], body["no_objects"]) == (200, 2, True)
    assert (body["labels"], body["suggestions"]) == ([], [])
    assert contents(mirror) == ""
    assert [(r[0], r[1]) for r in rows(settings)] == [(suggestion["id"], "rejected")]

    cleared = await client.put(f"{IMAGE}/labels", json={"version": 2, "labels": []})

    assert cleared.json()["no_objects"] is False
    assert contents(mirror) is None


# --- suggestions ----------------------------------------------------------------------------


async def test_posted_suggestions_are_pending_with_source_confidence_and_model(
    client: httpx.AsyncClient, image: str, app_stores: Stores, tmp_path: Path
) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    await app_stores.model.save("m1", weights, "yolov8n.pt", PROJECT, 1, {})

    body = await suggest(
        client,
        {**label(0), "confidence": 0.9, "model": "m1"},
        {**label(1, x=0.2)},
    )

    assert body["labels"] == []
    assert [(s["source"], s["confidence"], s["model"]) for s in body["suggestions"]] == [
        ("model", 0.9, "m1"),
        ("import", None, None),
    ]
    listed = await client.get(f"{IMAGE}/suggestions")
    assert listed.json()["suggestions"] == body["suggestions"]


@pytest.mark.parametrize(
    "bad",
    [
        {**label(0), "confidence": 1.2},
        {**label(0), "model": "nobody"},
        label(5),
        label(0, x=0.99),
    ],
    ids=["confidence-above-1", "unknown-model", "unknown-class", "outside"],
)
async def test_bad_suggestions_get_422_and_none_is_added(
    client: httpx.AsyncClient, image: str, bad: dict[str, Any]
) -> None:
    response = await client.post(f"{IMAGE}/suggestions", json={"suggestions": [label(1), bad]})

    assert response.status_code == 422
    assert (await state(client))["suggestions"] == []


async def test_accepting_a_suggestion_through_a_save_keeps_its_source_and_confidence(
    client: httpx.AsyncClient, image: str, mirror: Path
) -> None:
    (suggestion,) = (await suggest(client, {**label(2), "confidence": 0.8}))["suggestions"]

    response = await client.put(
        f"{IMAGE}/labels",
        json={"version": 0, "labels": [label(1, x=0.3, id=suggestion["id"])]},
    )

    body = response.json()
    assert body["version"] == 1
    assert body["suggestions"] == []
    (accepted,) = body["labels"]
    assert (accepted["id"], accepted["class_id"], accepted["x"]) == (suggestion["id"], 1, 0.3)
    assert (accepted["source"], accepted["confidence"]) == ("import", 0.8)
    assert contents(mirror) == "1 0.300000 0.500000 0.200000 0.200000\n"


async def test_rejecting_in_a_save_keeps_the_row_as_rejected_and_out_of_the_mirror(
    client: httpx.AsyncClient, image: str, mirror: Path, settings: Settings
) -> None:
    suggestions = (await suggest(client, {**label(2), "confidence": 0.8}, {**label(0, x=0.2)}))[
        "suggestions"
    ]

    response = await client.put(
        f"{IMAGE}/labels",
        json={"version": 0, "labels": [label(1, x=0.7)], "reject": [suggestions[0]["id"]]},
    )

    body = response.json()
    assert body["version"] == 1
    assert body["suggestions"] == suggestions[1:]
    assert contents(mirror) == "1 0.700000 0.500000 0.200000 0.200000\n"
    statuses = {r[0]: r[1] for r in rows(settings)}
    assert statuses[suggestions[0]["id"]] == "rejected"
    assert statuses[suggestions[1]["id"]] == "pending"


async def test_accepting_one_suggestion_bumps_the_version_and_answers_the_image(
    client: httpx.AsyncClient, image: str, mirror: Path
) -> None:
    first, second = (
        await suggest(
            client, {**label(2), "confidence": 0.8}, {**label(0, x=0.2), "confidence": 0.3}
        )
    )["suggestions"]

    response = await client.post(f"{IMAGE}/suggestions/{first['id']}/accept")

    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert body["labels"] == [first]
    assert body["suggestions"] == [second]
    assert contents(mirror) == "2 0.500000 0.500000 0.200000 0.200000\n"


async def test_rejecting_one_suggestion_keeps_its_row_and_bumps_the_version(
    client: httpx.AsyncClient, image: str, mirror: Path, settings: Settings
) -> None:
    (suggestion,) = (await suggest(client, {**label(2), "confidence": 0.8}))["suggestions"]

    response = await client.post(f"{IMAGE}/suggestions/{suggestion['id']}/reject")

    body = response.json()
    assert (response.status_code, body["version"]) == (200, 1)
    assert (body["labels"], body["suggestions"]) == ([], [])
    assert rows(settings) == [(suggestion["id"], "rejected", "import", 0.8)]
    assert contents(mirror) is None


@pytest.mark.parametrize("action", ["accept", "reject"])
async def test_an_unknown_suggestion_id_gets_404(
    client: httpx.AsyncClient, image: str, action: str
) -> None:
    await suggest(client, label(2))

    response = await client.post(f"{IMAGE}/suggestions/999999/{action}")

    assert response.status_code == 404
    body = await state(client)
    assert (body["version"], len(body["suggestions"])) == (0, 1)


async def test_accept_all_and_reject_all_on_one_image(
    client: httpx.AsyncClient, image: str, mirror: Path
) -> None:
    await suggest(client, {**label(2), "confidence": 0.8}, {**label(0, x=0.2)})

    accepted = await client.post(f"{IMAGE}/suggestions/accept-all")

    body = accepted.json()
    assert (accepted.status_code, body["version"], len(body["labels"])) == (200, 1, 2)
    assert body["suggestions"] == []
    assert (contents(mirror) or "").count("\n") == 2

    await suggest(client, label(1, x=0.8), label(1, x=0.2))
    rejected = await client.post(f"{IMAGE}/suggestions/reject-all")

    body = rejected.json()
    assert (body["version"], len(body["labels"]), body["suggestions"]) == (2, 2, [])


# --- YOLO txt import ------------------------------------------------------------------------


async def test_a_yolo_file_with_a_confidence_column_is_imported_as_suggestions(
    client: httpx.AsyncClient, image: str
) -> None:
    text = "0 0.5 0.5 0.2 0.2 0.9\n\n2 0.25 0.5 0.1 0.2\n"

    response = await client.post(
        f"{IMAGE}/suggestions/import", content=text, headers={"content-type": "text/plain"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert [(s["class_id"], s["x"], s["confidence"], s["source"]) for s in body["suggestions"]] == [
        (0, 0.5, 0.9, "import"),
        (2, 0.25, None, "import"),
    ]
    assert (body["version"], body["labels"]) == (0, [])


async def test_a_yolo_file_can_be_uploaded_as_a_form_field(
    client: httpx.AsyncClient, image: str
) -> None:
    response = await client.post(
        f"{IMAGE}/suggestions/import",
        files={"file": ("a.txt", b"\xef\xbb\xbf1 0.5 0.5 0.2 0.2 0.4\n")},
    )

    assert response.status_code == 201, response.text
    assert [s["confidence"] for s in response.json()["suggestions"]] == [0.4]


async def test_every_malformed_line_is_reported_with_its_number_and_nothing_is_imported(
    client: httpx.AsyncClient, image: str
) -> None:
    text = (
        "0 0.5 0.5 0.2 0.2 0.9\n"  # 1: fine
        "cat 0.5 0.5 0.2 0.2\n"  # 2: class not a number
        "1 0.5 0.5 0.2\n"  # 3: too few values
        "\n"  # 4: blank, skipped
        "7 0.5 0.5 0.2 0.2\n"  # 5: unknown class
        "1 0.5 0.5 0.2 0.2 1.5\n"  # 6: confidence above 1
        "1 0.95 0.5 0.2 0.2\n"  # 7: past the right edge
        "1 0.5 0.5 nan 0.2\n"  # 8: not a finite number
        "2 0.5 0.5 0.2 0.2\n"  # 9: fine
    )

    response = await client.post(
        f"{IMAGE}/suggestions/import", content=text, headers={"content-type": "text/plain"}
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    for number in (2, 3, 5, 6, 7, 8):
        assert f"line {number}:" in detail
    for number in (1, 4, 9):
        assert f"line {number}:" not in detail
    assert (await state(client))["suggestions"] == []


async def test_an_import_that_is_not_text_or_lacks_the_file_field_gets_422(
    client: httpx.AsyncClient, image: str
) -> None:
    binary = await client.post(
        f"{IMAGE}/suggestions/import",
        content=b"\xff\xfe\x00",
        headers={"content-type": "text/plain"},
    )
    no_field = await client.post(
        f"{IMAGE}/suggestions/import", files={"other": ("a.txt", b"0 0.5 0.5 0.2 0.2\n")}
    )

    assert (binary.status_code, no_field.status_code) == (422, 422)
    assert (await state(client))["suggestions"] == []


# --- project-wide ---------------------------------------------------------------------------


async def test_bulk_accept_at_half_takes_those_above_and_leaves_the_others_pending(
    client: httpx.AsyncClient, image: str, app_stores: Stores, settings: Settings
) -> None:
    data = encode(make_image(WIDTH, HEIGHT, 2), ".png")
    await app_stores.image.save_file(PROJECT, "val", "b.png", io.BytesIO(data))
    await suggest(client, {**label(0), "confidence": 0.5}, {**label(1, x=0.2), "confidence": 0.49})
    await app_stores.label.add_suggestions(
        PROJECT,
        "b.png",
        [Annotation(2, 0.5, 0.5, 0.2, 0.2, confidence=0.95), Annotation(2, 0.2, 0.2, 0.2, 0.2)],
    )
    summary = await client.get(f"{BASE}/suggestions/summary", params={"min_confidence": 0.5})
    everything = await client.get(f"{BASE}/suggestions/summary")
    assert summary.json() == {"suggestions": 2, "images": 2}
    assert everything.json() == {"suggestions": 4, "images": 2}

    response = await client.post(f"{BASE}/suggestions/accept", json={"min_confidence": 0.5})

    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "images": 2}
    after = await client.get(f"{BASE}/suggestions/summary", params={"min_confidence": 0.5})
    assert after.json() == {"suggestions": 0, "images": 0}
    body = await state(client)
    assert [(b["class_id"], b["confidence"]) for b in body["labels"]] == [(0, 0.5)]
    assert [(b["class_id"], b["confidence"]) for b in body["suggestions"]] == [(1, 0.49)]
    assert body["version"] == 1
    b = (await client.get(f"{BASE}/images/b.png/labels")).json()
    assert [(s["confidence"]) for s in b["labels"]] == [0.95]
    assert [(s["confidence"]) for s in b["suggestions"]] == [None]
    labels_dir = settings.data_dir / "projects" / PROJECT / "labels"
    assert contents(labels_dir / "val" / "b.txt") == "2 0.500000 0.500000 0.200000 0.200000\n"


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/suggestions/summary?min_confidence=1.5", None),
        ("GET", "/suggestions/summary?min_confidence=nan", None),
        ("POST", "/suggestions/accept", {"min_confidence": -0.1}),
        ("POST", "/suggestions/accept", {}),
    ],
)
async def test_a_bad_threshold_gets_422_and_accepts_nothing(
    client: httpx.AsyncClient, image: str, method: str, path: str, payload: Any
) -> None:
    await suggest(client, {**label(0), "confidence": 0.9})

    response = await client.request(
        method,
        f"{BASE}{path}",
        content=json.dumps(payload) if payload is not None else None,
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    assert len((await state(client))["suggestions"]) == 1


async def test_the_project_wide_review_of_an_unknown_project_gets_404(
    client: httpx.AsyncClient,
) -> None:
    summary = await client.get("/api/v1/projects/nope/suggestions/summary")
    accept = await client.post(
        "/api/v1/projects/nope/suggestions/accept", json={"min_confidence": 0.5}
    )

    assert (summary.status_code, accept.status_code) == (404, 404)


async def test_the_image_row_records_the_label_files_size_and_mtime_after_a_save(
    client: httpx.AsyncClient, image: str, mirror: Path, settings: Settings
) -> None:
    await client.put(f"{IMAGE}/labels", json={"version": 0, "labels": [label(0), label(1)]})

    with sqlite3.connect(settings.data_dir / "ydc.db") as conn:
        size, mtime_ns = conn.execute("SELECT label_size, label_mtime_ns FROM image").fetchone()
    assert (size, mtime_ns) == size_and_mtime(mirror)

    await client.put(f"{IMAGE}/labels", json={"version": 1, "labels": []})

    with sqlite3.connect(settings.data_dir / "ydc.db") as conn:
        assert conn.execute("SELECT label_size, label_mtime_ns FROM image").fetchone() == (
            None,
            None,
        )
    assert contents(mirror) is None


async def test_a_stale_save_gets_a_409_the_openapi_document_declares(
    client: httpx.AsyncClient, image: str
) -> None:
    version = (await state(client))["version"]
    await client.put(f"{IMAGE}/labels", json={"version": version, "labels": [label(0)]})

    response = await client.put(f"{IMAGE}/labels", json={"version": version, "labels": []})

    assert response.status_code == 409
    await assert_documented_error(
        client, response, "/api/v1/projects/{name}/images/{filename}/labels"
    )
