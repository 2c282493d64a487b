"""A training run's progress, passed from a Ray Train worker to the driver through one small file.

Ray Train hands the driver the reported rows only when `fit()` returns, so the driver cannot draw a
progress bar from them while the run is going. Instead rank 0 writes `{"step", "total", "start"}` to
`<run storage>/<run name>/progress.json` (atomically: a temp file, then `os.replace`) and the driver
polls that file from a daemon thread, advancing a `components.progress` bar. All of it is off when the
driver's stderr is not a terminal (no file is written, no thread is started): a log gets no bar.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from components.progress import progress

FILE = "progress.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mark:
    step: int  # the last finished step
    total: int  # the run's last step
    start: int  # the step this attempt resumed after (0: a fresh run)


def progress_path(storage: str, run_name: str, stream: TextIO | None = None) -> Path | None:
    """Where a run's workers should write their progress, or None where no bar would be drawn (`stream`,
    stderr by default, is not a terminal) or the driver cannot read the run's folder (storage at a URI)."""
    if "://" in storage or not (stream or sys.stderr).isatty():
        return None
    return Path(storage) / run_name / FILE


def write_mark(path: Path, mark: Mark) -> None:
    """Replace the file at once, so a reader sees the old mark or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"step": mark.step, "total": mark.total, "start": mark.start}))
    os.replace(tmp, path)


def read_mark(path: Path) -> Mark | None:
    """The last mark written, or None (no file yet, or not one this module wrote)."""
    try:
        d = json.loads(path.read_text())
        return Mark(int(d["step"]), int(d["total"]), int(d.get("start", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class StepWriter:
    """The worker's end: `on_step` for `WorkerHooks`. The first step it gets fixes `start` (a resumed
    attempt's first step follows its checkpoint's); then at most one mark per `min_interval` seconds (a
    step can take milliseconds), and always the first and the last. A failed write is logged and skipped:
    a progress bar must never fail a training run."""

    def __init__(self, path: Path, total: int, min_interval: float = 0.2):
        self.path, self.total, self.min_interval = Path(path), int(total), min_interval
        self.start: int | None = None
        self.written_at = 0.0

    def __call__(self, step: int) -> None:
        now = time.monotonic()
        if self.start is None:
            self.start = step - 1
        elif step < self.total and now - self.written_at < self.min_interval:
            return
        self.written_at = now
        try:
            write_mark(self.path, Mark(step, self.total, self.start))
        except OSError as e:
            log.debug("progress file %s not written: %s", self.path, e)


def step_writer(path: Path | str | None, total: int) -> StepWriter | None:
    """A `StepWriter` where the driver asked for progress (`path`), else None (the hook stays off)."""
    return StepWriter(Path(path), total) if path else None


class _Follower:
    """The driver's end: opens the bar at the first mark (at the mark's resumed step, with its total) and
    advances it to each newer step. A restarted worker group redoes steps from its last checkpoint: the
    bar holds until it passes the step already shown."""

    def __init__(self, path: Path, description: str, stream: TextIO, bar: ExitStack):
        self.path, self.description, self.stream, self.bar = path, description, stream, bar
        self.advance: Callable[[int], None] | None = None
        self.shown = 0

    def tick(self) -> None:
        mark = read_mark(self.path)
        if mark is None:
            return
        if self.advance is None:
            self.shown = min(mark.start, mark.total)
            self.advance = self.bar.enter_context(
                progress(self.description, mark.total, stream=self.stream, start=self.shown)
            )
        step = min(mark.step, mark.total)
        if step > self.shown:
            self.advance(step - self.shown)
            self.shown = step


def _poll(path: Path, description: str, stream: TextIO, interval: float, stop: threading.Event) -> None:
    with ExitStack() as bar:
        follower = _Follower(path, description, stream, bar)
        while not stop.wait(interval):
            follower.tick()
        follower.tick()  # the last mark written before the run returned


@contextmanager
def follow(path: Path | None, description: str, stream: TextIO | None = None, interval: float = 0.5) -> Iterator[None]:
    """While the body runs (`fit()`), a bar on `stream` (stderr by default) that follows the marks written
    to `path`; it closes when the body returns or raises. Nothing at all (no thread) without a path or
    off a terminal. A mark left by an earlier, killed attempt is removed first, and the file at the end."""
    stream = stream or sys.stderr
    if path is None or not stream.isatty():
        yield
        return
    path = Path(path)
    path.unlink(missing_ok=True)
    stop = threading.Event()
    thread = threading.Thread(
        target=_poll, args=(path, description, stream, interval, stop), name="lfsd-training-progress", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        path.unlink(missing_ok=True)
