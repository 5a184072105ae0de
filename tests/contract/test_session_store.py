"""SessionStore contract: capture sessions, their counts and log."""

from __future__ import annotations

import io

import pytest

from app.domain.errors import Invalid, NotFound
from app.domain.models import ImageFilter
from app.domain.stores import Stores
from tests.contract.support import png


async def test_creating_a_session_starts_it_in_progress(stores: Stores, project: str) -> None:
    info = await stores.session.create(project, "video", {"fps": 2, "file": "clip.mp4"})

    assert info.dataset == project
    assert info.source == "video"
    assert info.settings == {"fps": 2, "file": "clip.mp4"}
    assert info.status == "in_progress"
    assert info.counts == {}
    assert info.log == []
    assert info.ended_at is None
    assert await stores.session.get(info.id) == info


async def test_creating_a_session_for_an_unknown_project_raises_not_found(
    stores: Stores, project: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await stores.session.create("nobody", "webcam")
    assert isinstance(caught.value, FileNotFoundError)
    assert await stores.session.list(project) == []


async def test_creating_a_session_with_an_unknown_source_raises_invalid(
    stores: Stores, project: str
) -> None:
    with pytest.raises(Invalid):
        await stores.session.create(project, "telepathy")
    assert await stores.session.list(project) == []


async def test_getting_an_unknown_session_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.session.get(12345)


async def test_listing_sessions_gives_one_projects_sessions_newest_first(
    stores: Stores, project: str
) -> None:
    await stores.dataset.create("other", ["x"])
    first = await stores.session.create(project, "video")
    await stores.session.create("other", "folder")
    second = await stores.session.create(project, "stream")

    listed = await stores.session.list(project)

    assert [s.id for s in listed] == [second.id, first.id]


async def test_listing_the_sessions_of_an_unknown_project_raises_not_found(
    stores: Stores,
) -> None:
    with pytest.raises(NotFound):
        await stores.session.list("nobody")


async def test_recording_adds_to_the_counts_and_appends_to_the_log(
    stores: Stores, project: str
) -> None:
    session = await stores.session.create(project, "folder")

    await stores.session.record(session.id, counts={"saved": 2, "duplicates": 1}, log="first")
    info = await stores.session.record(session.id, counts={"saved": 3}, log="second")

    assert info.counts == {"saved": 5, "duplicates": 1}
    assert info.log == ["first", "second"]
    assert info.status == "in_progress"
    assert info.ended_at is None
    assert await stores.session.get(session.id) == info


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_recording_a_final_status_ends_the_session(
    stores: Stores, project: str, status: str
) -> None:
    session = await stores.session.create(project, "webcam")

    info = await stores.session.record(session.id, status=status)

    assert info.status == status
    assert info.ended_at is not None
    assert info.ended_at >= session.created_at


async def test_recording_an_unknown_status_raises_invalid_and_changes_nothing(
    stores: Stores, project: str
) -> None:
    session = await stores.session.create(project, "webcam")

    with pytest.raises(Invalid):
        await stores.session.record(session.id, counts={"saved": 1}, status="exploded")

    assert await stores.session.get(session.id) == session


async def test_recording_into_an_unknown_session_raises_not_found(stores: Stores) -> None:
    with pytest.raises(NotFound):
        await stores.session.record(12345, log="hello")


async def test_deleting_a_session_keeps_its_images(stores: Stores, project: str) -> None:
    session = await stores.session.create(project, "folder")
    await stores.image.save_file(
        project, "train", "a.png", io.BytesIO(png(1)), session_id=session.id
    )

    assert await stores.session.delete(session.id) is True

    with pytest.raises(NotFound):
        await stores.session.get(session.id)
    assert await stores.session.list(project) == []
    assert [i.filename for i in await stores.image.list(project)] == ["a.png"]


async def test_deleting_an_unknown_session_returns_false(stores: Stores) -> None:
    assert await stores.session.delete(12345) is False


async def test_the_session_filter_finds_exactly_a_sessions_frames(
    stores: Stores, project: str
) -> None:
    first = await stores.session.create(project, "webcam")
    second = await stores.session.create(project, "webcam")
    for seed, (name, session_id) in enumerate(
        [("a.png", first.id), ("b.png", second.id), ("c.png", None), ("d.png", first.id)]
    ):
        await stores.image.save_file(
            project, "train", name, io.BytesIO(png(seed + 1)), session_id=session_id
        )

    found = await stores.image.search(project, ImageFilter(session_id=first.id))

    assert [i.filename for i in found] == ["a.png", "d.png"]
    assert await stores.image.count(project, ImageFilter(session_id=second.id)) == 1
    assert await stores.image.count(project, ImageFilter(session_id=9999)) == 0
