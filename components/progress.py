"""Progress with an ETA on a terminal, silence in logs: a long step (a benchmark, a sequence) shows a
progress bar only when its stream is a TTY; redirected to a file or run by a scheduler, its log lines
are the record and nothing else is written."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress(
    description: str, total: int, stream: TextIO | None = None, enabled: bool = True, start: int = 0
) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n=1)`. On a TTY (and `enabled`), a bar with done/total, elapsed time and the time
    remaining (what has been done so far, extrapolated); elsewhere `advance` does nothing. `start`: work
    done before this bar (a resumed training run): shown as done, but not counted in the ETA's rate."""
    stream = stream or sys.stderr
    if not (enabled and stream.isatty()):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream, force_terminal=True)) as bar:
        task = bar.add_task(description, total=total, completed=start)
        yield lambda n=1: bar.advance(task, n)
