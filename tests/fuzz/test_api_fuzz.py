"""Fuzz the JSON API with schemathesis against its own OpenAPI document (issue 10, point 5).

The app runs in-process (schemathesis' ASGI transport runs its lifespan) on a temp data dir,
accounts off, with a project, images, labels and a few tasks seeded first; half of the
generated path parameters name those real objects. Every response is checked: no 5xx, a
status code the document declares, headers, a body and content type matching its schema, and a
4xx for a request the document calls invalid.

Bounded and repeatable: a fixed seed, derandomized Hypothesis and at most ``YDC_FUZZ_EXAMPLES``
generated examples per operation (25: about a minute for the 70-odd operations), besides the
document's examples and schemathesis' boundary cases. ``bench/fuzz.py`` runs the same test for
5 minutes with more examples and other seeds; ``YDC_FUZZ_REPORT`` names a JSON file that gets
each operation's status counts and failures.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app
from tests.conftest import encode, make_image

EXAMPLES = int(os.environ.get("YDC_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("YDC_FUZZ_SEED", "20261124"))
PROJECT = "fuzz"
IMAGES = 3

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,  # what the document calls invalid is refused (a 4xx)
]


def _document() -> dict[str, Any]:
    """The OpenAPI document (an app built, never started: no data dir is touched)."""
    return create_app(Settings(data_dir=Path("unused"), run_tasks=False, accounts=False)).openapi()


schema = schemathesis.openapi.from_dict(
    _document(), config=SchemathesisConfig.from_dict({"seed": SEED})
)


class Seed:
    """The real objects path parameters may name, put back before each operation."""

    def __init__(self, client: asgi.ASGIClient) -> None:
        self.client = client
        self.token = client.get("/api/v1/csrf").json()["token"]
        client.headers["X-CSRF-Token"] = self.token
        self.filenames: list[str] = []
        self.class_ids: list[int] = []
        self.task_ids: list[int] = []

    def headers(self) -> dict[str, str]:
        """What a script sends with every request: the cookie and its token."""
        return {"X-CSRF-Token": self.token, "Cookie": f"ydc_csrf={self.token}"}

    def ensure(self) -> None:
        """The project, its classes, images and labels, as they were at the start."""
        client = self.client
        if client.get(f"/api/v1/projects/{PROJECT}").status_code == 404:
            created = client.post(
                "/api/v1/projects", json={"name": PROJECT, "classes": ["cat", "dog"]}
            )
            assert created.status_code == 201, created.text
        self.class_ids = [c["id"] for c in client.get(f"/api/v1/projects/{PROJECT}/classes").json()]
        pngs = [encode(make_image(seed=i)) for i in range(IMAGES)]
        files = [("files", (f"img{i}.png", png, "image/png")) for i, png in enumerate(pngs)]
        uploaded = client.post(f"/api/v1/projects/{PROJECT}/images", files=files)
        assert uploaded.status_code == 200, uploaded.text
        self.filenames = [r["filename"] for r in uploaded.json()["results"] if r["filename"]]
        for filename in self.filenames[:2]:
            url = f"/api/v1/projects/{PROJECT}/images/{filename}/labels"
            version = client.get(url).json()["version"]
            box = {"class_id": 0, "x": 0.5, "y": 0.5, "width": 0.2, "height": 0.2}
            client.put(url, json={"version": version, "labels": [box]})
        if not self.task_ids:
            task = client.post(f"/api/v1/projects/{PROJECT}/export", json={})
            assert task.status_code == 202, task.text
            self.task_ids.append(task.json()["id"])
            webcam = client.post(f"/api/v1/projects/{PROJECT}/sessions/webcam", data={})
            assert webcam.status_code == 201, webcam.text


# Path parameters naming what the seed made: a fresh database numbers its first rows 1, 2, …
REAL: dict[str, list[Any]] = {
    "name": [PROJECT],
    "filename": [f"img{i}.png" for i in range(IMAGES)],
    "class_id": [1, 2],
    "task_id": [1],
    "session_id": [1],
}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the path parameters name the seeded objects, half are whatever was generated."""
    if not path_parameters:
        return st.just(path_parameters)
    real = {
        k: st.sampled_from(REAL[k]) if k in REAL else st.just(v) for k, v in path_parameters.items()
    }
    return st.one_of(st.fixed_dictionaries(real), st.just(path_parameters))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    """The app on a temp data dir with its lifespan running (no task runner), and its seed."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    app = create_app(Settings(data_dir=data_dir, run_tasks=False, allowed_hosts=["testserver"]))
    with asgi.get_client(app) as client:
        try:
            yield Seed(client)
        finally:
            asgi.shutdown_lifespans()


@pytest.fixture
def seed(served: Seed) -> Seed:
    """The seed, put back before each operation (the one before may have deleted it)."""
    served.ensure()
    return served


# What ran, per operation: status codes answered and failures (for bench/fuzz.py).
STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)
FAILURES: defaultdict[str, list[str]] = defaultdict(list)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Write what ran to ``YDC_FUZZ_REPORT`` at the end, when it names a file."""
    yield
    if path := os.environ.get("YDC_FUZZ_REPORT"):
        ran = {
            label: {"statuses": dict(sorted(STATUSES[label].items())), "failures": FAILURES[label]}
            for label in sorted(STATUSES.keys() | FAILURES.keys())
        }
        Path(path).write_text(json.dumps({"seed": SEED, "examples": EXAMPLES, "operations": ran}))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing case is shown
    suppress_health_check=list(HealthCheck),
)
def test_every_api_answer_matches_the_openapi_document(case: Any, seed: Seed) -> None:
    response = case.call(base_url="http://testserver", session=seed.client, headers=seed.headers())
    label = case.operation.label
    STATUSES[label][response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except (AssertionError, BaseExceptionGroup) as failure:  # schemathesis' FailureGroup
        FAILURES[label].append(str(failure)[:2000])
        raise
