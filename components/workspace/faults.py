"""Test-only fault injection: SIGKILL this process's whole group at a named point of the chain, so the
crash tests hit exactly the moment they mean (after the commit, in the middle of registration) with a
real SIGKILL, not an exception the code could catch; or hold the process still at a point, so a test can
send it a signal there (Ctrl-C during the evaluation). Unset in production: a no-op."""

from __future__ import annotations

import os
import signal
import time

DIE_AT_ENV = "LFSD_DIE_AT"
PAUSE_AT_ENV = "LFSD_PAUSE_AT"
POINTS = ("after-commit", "during-register", "after-forget-relearn", "after-forget-commit", "after-forget-register")
PAUSE_POINTS = ("during-evaluate",)
PAUSE_SECONDS = 120.0


def die_here_if_asked(point: str) -> None:
    if os.environ.get(DIE_AT_ENV) == point:
        os.killpg(os.getpgid(0), signal.SIGKILL)


def pause_here_if_asked(point: str) -> None:
    """Say `paused at POINT` on stderr and sleep (in short naps, so a signal's Python handler runs at once);
    the run goes on after PAUSE_SECONDS if nothing stopped it."""
    if os.environ.get(PAUSE_AT_ENV) != point:
        return
    os.write(2, f"lfsd-test: paused at {point}\n".encode())  # straight to the terminal, past any log capture
    deadline = time.monotonic() + PAUSE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
