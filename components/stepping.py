"""How the chains (onboarding, removal) run their steps: through the caller's runner (plain, or each
step a Prefect task), timed as the chain saw them; and what an onboarding returns."""

from __future__ import annotations

import time
from collections.abc import Callable
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
