"""Crash test (issue 6): a real server in a subprocess ingests images and saves labels while it is
killed with SIGKILL 20 times and restarted each time. Half of the kills come from the code's
fault-injection points (``app/faults.py``), half from this test at random moments. After the
last restart (whose start-up reconcile repairs what the kills left) the data dir must keep every
promise of DESIGN.md "Write protocol"; ``check_data_dir`` lists any that it breaks.

Reproduce a run with ``YDC_CRASH_SEED=<the seed printed>``.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from app.faults import POINTS
from tests.crash.support import (
    CLASSES,
    PROJECT,
    Client,
    ImageState,
    Ledger,
    Server,
    api_client,
    check_data_dir,
    random_image,
    start_server,
    stop_cleanly,
)

KILLS = 20
FAULT_KILLS = 10
THREADS = 3
SETUP_IMAGES = 6
FAULT_WAIT_S = 20.0
FAULT_ORDER = ("after-temp-fsync", "before-commit", "after-commit")


def plan_kills(rng: random.Random) -> list[tuple[str, int] | None]:
    """The lives' kills: ``(point, N)`` for the code's fault points (round-robin), ``None`` for
    this test's random kill. The first life sets the project up, so its kill is random."""
    assert set(FAULT_ORDER) == POINTS
    faults: list[tuple[str, int] | None] = [
        (FAULT_ORDER[i % len(FAULT_ORDER)], rng.randint(1, 6)) for i in range(FAULT_KILLS)
    ]
    rest = faults + [None] * (KILLS - FAULT_KILLS - 1)
    rng.shuffle(rest)
    return [None, *rest]


def set_up(server: Server, ledger: Ledger, rng: random.Random) -> None:
    with api_client(server.url) as http:
        created = http.post("/api/v1/projects", json={"name": PROJECT, "classes": CLASSES})
        assert created.status_code == 201, created.text
        for n in range(SETUP_IMAGES):
            name = f"setup-{n}.png"
            answer = http.post(
                f"/api/v1/projects/{PROJECT}/images",
                files=[("files", (name, random_image(rng), "image/png"))],
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["results"][0]["status"] == "stored", answer.text
            ledger.add(ImageState(name, owner=n % THREADS, version=0))


def live_and_die(
    server: Server, fault: tuple[str, int] | None, ledger: Ledger, life: int, rng: random.Random
) -> None:
    """Run the clients against ``server`` until it dies: by its own fault point, or by this
    test's SIGKILL after a random 0.05 to 0.5 s."""
    stop = threading.Event()
    clients = [
        Client(server.url, ledger, owner, life, rng.randrange(2**32)) for owner in range(THREADS)
    ]
    threads = [
        threading.Thread(target=c.run, args=(stop,), name=f"crash-client-{c.owner}")
        for c in clients
    ]
    for thread in threads:
        thread.start()
    try:
        if fault is None:
            time.sleep(rng.uniform(0.05, 0.5))
            server.process.kill()
        code = server.wait(FAULT_WAIT_S)
        if code is None:
            server.process.kill()
            raise AssertionError(f"life {life}: fault point {fault} not reached")
        assert code == -signal.SIGKILL, f"life {life}: the server exited with {code}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive(), "a client thread hung"


def summary(
    seed: int, plan: list[tuple[str, int] | None], kills: Counter[str], counts: Counter[str]
) -> str:
    refused = sum(v for k, v in counts.items() if "refused" in k)
    lines = [
        f"crash test: seed {seed} (YDC_CRASH_SEED={seed} runs the same plan)",
        "  plan: " + ", ".join(f"{f[0]}@{f[1]}" if f else "random" for f in plan),
        "  kills: " + ", ".join(f"{k} {v}" for k, v in sorted(kills.items())),
        f"  requests refused: {refused}",
        *(f"  {key}: {value}" for key, value in sorted(counts.items())),
    ]
    return "\n".join(lines)


def test_twenty_sigkills_lose_nothing_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("YDC_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    ledger = Ledger()
    kills: Counter[str] = Counter()
    started = time.monotonic()
    starting = 0.0  # of which the servers' start-ups (imports, migrations, reconcile)

    plan = plan_kills(rng)
    for life, fault in enumerate(plan):
        before = time.monotonic()
        server = start_server(data_dir, log_path, fault)
        starting += time.monotonic() - before
        if server is None:  # the point was reached by the start-up reconcile's own writes
            assert fault is not None
            kills[f"{fault[0]} (start-up)"] += 1
            continue
        if life == 0:
            set_up(server, ledger, rng)
        live_and_die(server, fault, ledger, life, rng)
        kills[fault[0] if fault else "random"] += 1

    # The last start: its reconcile repairs what the kills left; then a clean stop.
    server = start_server(data_dir, log_path, None)
    assert server is not None
    assert stop_cleanly(server) == 0
    counts, problems = check_data_dir(data_dir, ledger)
    counts.update(ledger.counts)
    counts["wall time (s)"] = round(time.monotonic() - started)
    counts["wall time starting servers (s)"] = round(starting)
    with capsys.disabled():  # the counts are part of the test's output, pass or fail
        print("\n" + summary(seed, plan, kills, counts))

    assert sum(kills.values()) == KILLS
    assert kills["random"] == KILLS - FAULT_KILLS
    assert counts["label saves answered"] > 0, "the clients did no work"
    problems = ledger.problems + problems
    assert not problems, f"{len(problems)} broken promises (seed {seed}):\n" + "\n".join(
        problems[:50]
    )
