"""One writer per workspace: every command that changes a workspace holds this lock for its whole
critical section; read-only commands (evaluate, generate, ui) never take it.

The lock is `filelock`'s OS-level lock on `<state>/writer.lock`: the kernel releases it when the
holder dies, however it dies (SIGKILL included), so a lock left by a killed process never blocks.
Beside it, `writer.holder.json` says who holds it (command, pid, host, since) so a second writer can
say whom it waits for. Re-entrant within one process (a sequence holds it across its concepts).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from components.state import ensure_state_dir

LOCK_FILE = "writer.lock"
HOLDER_FILE = "writer.holder.json"
BUSY_EXIT_CODE = 75  # EX_TEMPFAIL: try again later (`--no-wait`)
WAIT_NOTICE_EVERY_S = 30.0


class WorkspaceBusy(RuntimeError):
    """Another writer holds the workspace and the caller asked not to wait."""


def holder(root: Path) -> dict | None:
    """Who holds (or last held) the lock, as it wrote itself down; None if nobody ever did."""
    path = ensure_state_dir(root) / HOLDER_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def describe(info: dict | None) -> str:
    if not info:
        return "another lfsd process (it has not said who it is yet)"
    return f"`lfsd {info.get('command')}` (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"


@contextmanager
def writer_lock(root: Path, command: str, *, wait: bool = True, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the workspace's writer lock. Busy: wait (saying whom for, every WAIT_NOTICE_EVERY_S), or
    with `wait=False` raise WorkspaceBusy naming the holder."""
    from filelock import FileLock, Timeout

    state = ensure_state_dir(root)
    # One instance per path, shared by all threads: re-entrant in-process (flows may run subflows in threads).
    lock = FileLock(state / LOCK_FILE, is_singleton=True, thread_local=False)
    outermost = not lock.is_locked
    try:
        lock.acquire(timeout=0)
    except Timeout:
        message = f"workspace {Path(root)} is being changed by {describe(holder(root))}"
        if not wait:
            raise WorkspaceBusy(f"{message}; not waiting (--no-wait)") from None
        while True:
            log(f"{message}; waiting for it to finish")
            try:
                lock.acquire(timeout=WAIT_NOTICE_EVERY_S)
                break
            except Timeout:
                message = f"workspace {Path(root)} is still being changed by {describe(holder(root))}"
    try:
        if outermost:
            info = {
                "command": command,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (state / HOLDER_FILE).write_text(json.dumps(info))
        yield
    finally:
        if outermost:
            (state / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()
