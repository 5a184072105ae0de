"""The fault-injection hook: a no-op unless armed, SIGKILL at the N-th reach when armed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from app import faults

ROOT = Path(__file__).resolve().parents[2]
# Prints how many times it got past the point; an armed point kills it before the next print.
SCRIPT = """
from app.faults import fault_point
for n in range(1, 6):
    fault_point("before-commit")
    print(n, flush=True)
"""


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("YDC_FAULT_")}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unarmed_fault_point_does_nothing() -> None:
    assert os.environ.get(faults.POINT_ENV) is None
    for name in faults.POINTS:
        faults.fault_point(name)  # still alive


def test_an_armed_point_kills_the_process_with_sigkill_the_nth_time_it_is_reached() -> None:
    done = run_script({faults.POINT_ENV: "before-commit", faults.AFTER_ENV: "3"})
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1", "2"]


def test_a_point_other_than_the_armed_one_never_fires() -> None:
    done = run_script({faults.POINT_ENV: "after-commit", faults.AFTER_ENV: "1"})
    assert done.returncode == 0
    assert done.stdout.split() == ["1", "2", "3", "4", "5"]


def test_an_unknown_point_name_in_the_environment_is_refused_at_start() -> None:
    done = run_script({faults.POINT_ENV: "after-comit"})
    assert done.returncode == 1
    assert "is not one of" in done.stderr
