"""How the chains (onboarding, removal) run their steps: through the caller's runner (plain, or each
step a Prefect task), timed as the chain saw them; what an onboarding returns; and Ctrl-C kept an abort
across a step that lets a library take SIGINT over (`ctrl_c_kept`)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

StepRunner = Callable[..., Any]  # run_step(name, fn, *args, **kwargs) -> fn(*args, **kwargs)
Log = Callable[[str], None]


def run_plain(name: str, fn, *args, **kwargs):
    return fn(*args, **kwargs)


@dataclass
class OnboardResult:
    concept: str
    status: str  # "onboarded" | "already-onboarded"
    checkpoint: str = ""
    dataset: str = ""
    version: str = ""
    run_id: str = ""
    gate: str = ""
    production: str | None = None
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # per step wall time, as the chain saw it


class Timed:
    """Runs steps through the caller's runner and records the wall time each took, as the chain saw it."""

    def __init__(self, run_step: StepRunner):
        self.run_step, self.times = run_step, {}

    def __call__(self, name: str, fn, *args, **kwargs):
        t0 = time.time()
        try:
            return self.run_step(name, fn, *args, **kwargs)
        finally:
            self.times[name] = round(time.time() - t0, 2)


def _ray_counted_sigint(handler) -> bool:
    """Whether `handler` is Ray Train's Ctrl-C handler (ray.train.v2 DataParallelTrainer) and has run: it
    counts presses in a closure cell `sigint_count` and aborts the fit instead of raising."""
    code, cells = getattr(handler, "__code__", None), getattr(handler, "__closure__", None) or ()
    if code is None or "sigint_count" not in code.co_freevars:
        return False
    count = cells[code.co_freevars.index("sigint_count")].cell_contents
    return isinstance(count, int) and count > 0


@contextmanager
def ctrl_c_kept():
    """Ctrl-C stays an abort across a step that lets a library take SIGINT over. Ray Train's `fit` installs
    a handler that aborts the fit gracefully (resumable) and leaves it installed: a later Ctrl-C (during the
    evaluation, the registration) would be swallowed and the run would go on to register and promote.
    Here the handler in place before is put back, and a Ctrl-C the library absorbed is raised as
    KeyboardInterrupt, so the chain discards the attempt and the command exits 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.getsignal(signal.SIGINT)
    try:
        yield
    except BaseException as e:  # Ray's handler may end the fit with sys.exit (SystemExit) on a dead controller
        if _ray_counted_sigint(signal.getsignal(signal.SIGINT)):
            raise KeyboardInterrupt("Ctrl-C during training") from e
        raise
    finally:
        taken = signal.getsignal(signal.SIGINT)
        if saved is not None:
            signal.signal(signal.SIGINT, saved)
    if _ray_counted_sigint(taken):
        raise KeyboardInterrupt("Ctrl-C during training")
