"""Test-only fault injection: SIGKILL this process's whole group at a named point of the chain, so the
crash tests hit exactly the moment they mean (after the commit, in the middle of registration) with a
real SIGKILL, not an exception the code could catch. Unset in production: a no-op."""

from __future__ import annotations

import os
import signal

DIE_AT_ENV = "LFSD_DIE_AT"
POINTS = ("after-commit", "during-register", "after-forget-relearn", "after-forget-commit", "after-forget-register")


def die_here_if_asked(point: str) -> None:
    if os.environ.get(DIE_AT_ENV) == point:
        os.killpg(os.getpgid(0), signal.SIGKILL)
