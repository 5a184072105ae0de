"""Fault-injection points for the crash test (``tests/crash``): places where the process may be
killed to prove that a crash at that instant loses nothing committed (DESIGN.md "Write protocol").

A point does nothing unless the environment arms it when the process starts:

- ``YDC_FAULT_POINT``: the name of one point (below);
- ``YDC_FAULT_AFTER``: kill the process with SIGKILL the N-th time that point is reached in
  this process (default 1).

The points:

- ``after-temp-fsync``: a temp file under ``tmp/`` has been written and fsynced, not yet put in
  place (``files.stage``, ``files.write_staged``);
- ``before-commit``: a unit of work has flushed its rows and staged its files, and is about to
  commit (``SqlUnitOfWork.commit``);
- ``after-commit``: the commit has succeeded, the file actions after it (mirror renames, unlinks,
  moves) have not run yet.

The environment is read once, at import: an unarmed point costs one comparison.
"""

from __future__ import annotations

import itertools
import os
import signal

POINT_ENV = "YDC_FAULT_POINT"
AFTER_ENV = "YDC_FAULT_AFTER"
POINTS = frozenset({"after-temp-fsync", "before-commit", "after-commit"})

_armed: str | None = os.environ.get(POINT_ENV) or None
if _armed is not None and _armed not in POINTS:
    # A typo would leave the crash test running with no fault at all: refuse to start.
    raise ValueError(f"{POINT_ENV}={_armed!r} is not one of {sorted(POINTS)}")
_after = int(os.environ.get(AFTER_ENV) or 1)
# next() on itertools.count is atomic under the GIL: points are reached from worker threads.
_reached = itertools.count(1)


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL here if the environment armed this point and this is
    the N-th time it is reached; otherwise do nothing."""
    if _armed is None or name != _armed:
        return
    if next(_reached) >= _after:
        os.kill(os.getpid(), signal.SIGKILL)
