"""Fuzz: the JSON API against its OpenAPI document with schemathesis, for 5 minutes.

Usage: .venv/bin/python bench/fuzz.py [--seconds 300] [--examples 100] [--seed 20261124]

Runs the test of ``make test`` (tests/fuzz/test_api_fuzz.py: every operation of
``/openapi.json``, in-process on a seeded temp data dir; checks no 5xx, documented status codes,
content types and bodies) in rounds with ``--examples`` generated examples per operation, each
round with the next seed, and starts rounds until ``--seconds`` have gone by (the last one runs
to its end). Prints one line per round (seed, requests, failures, seconds) and then JSON: the
rounds, every operation's status counts over all of them, and every failure with its
operation (schemathesis' message: what was sent, what came back, how to reproduce it with
curl). Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/fuzz/test_api_fuzz.py"


def one_round(seed: int, examples: int, report: Path) -> dict[str, Any]:
    """Run the fuzz test once; what it reported, its seconds and pytest's last line."""
    env = {
        **os.environ,
        "YDC_FUZZ_SEED": str(seed),
        "YDC_FUZZ_EXAMPLES": str(examples),
        "YDC_FUZZ_REPORT": str(report),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", TEST]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    lines = done.stdout.strip().splitlines()
    if not report.exists():
        raise SystemExit(f"the fuzz test wrote no report:\n{done.stdout[-3000:]}{done.stderr}")
    ran = json.loads(report.read_text())
    if done.returncode != 0 and not any(op["failures"] for op in ran["operations"].values()):
        # A failure the test did not record (an exception before the checks): pytest's words.
        ran["operations"]["(pytest)"] = {"statuses": {}, "failures": [done.stdout[-3000:]]}
    return {"seconds": round(seconds, 1), "pytest": lines[-1] if lines else "", **ran}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()

    statuses: defaultdict[str, Counter[str]] = defaultdict(Counter)
    failures: list[dict[str, Any]] = []
    rounds = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ydc-fuzz-") as tmp:
        seed = args.seed
        while time.monotonic() - started < args.seconds:
            ran = one_round(seed, args.examples, Path(tmp) / f"round-{seed}.json")
            requests = failed = 0
            for label, operation in ran["operations"].items():
                statuses[label].update(operation["statuses"])
                requests += sum(operation["statuses"].values())
                failed += len(operation["failures"])
                failures += [
                    {"seed": seed, "operation": label, "failure": f} for f in operation["failures"]
                ]
            rounds.append(
                {"seed": seed, "requests": requests, "failures": failed, "seconds": ran["seconds"]}
            )
            print(
                f"round seed={seed} examples={args.examples} operations={len(ran['operations'])} "
                f"requests={requests} failures={failed} {ran['seconds']} s: {ran['pytest']}",
                flush=True,
            )
            seed += 1
    total = Counter[str]()
    for counts in statuses.values():
        total.update(counts)
    print(
        json.dumps(
            {
                "seconds": round(time.monotonic() - started, 1),
                "examples_per_operation": args.examples,
                "rounds": rounds,
                "requests": sum(total.values()),
                "statuses": dict(sorted(total.items())),
                "server_errors": sum(n for s, n in total.items() if s.startswith("5")),
                "operations": {k: dict(sorted(v.items())) for k, v in sorted(statuses.items())},
                "failures": failures,
            },
            indent=2,
        )
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
