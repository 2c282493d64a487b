"""One writer per workspace: every command that changes a workspace holds this lock for its whole
critical section; read-only commands (evaluate, generate, ui) never take it.

The lock is `filelock`'s OS-level lock (flock) on `<workspace>/.lfsd/writer.lock`, at that fixed place
whatever $LFSD_STATE_DIR says (two commands with different state folders must still exclude each other).
The kernel releases it when the holder dies, however it dies (SIGKILL included), so a lock left by a
killed process never blocks. filelock's soft fallback (a marker file where flock is missing, which a
SIGKILL leaves behind) is turned off: on such a file system lfsd refuses to write (LockUnsupported).
Beside it, `writer.holder.json` says who holds it (command, pid, host, since) so a second writer can
say whom it waits for. Re-entrant within one process (a sequence holds it across its concepts).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from components.state import lock_dir

LOCK_FILE = "writer.lock"
HOLDER_FILE = "writer.holder.json"
BUSY_EXIT_CODE = 75  # EX_TEMPFAIL: try again later (`--no-wait`)
WAIT_NOTICE_EVERY_S = 30.0


class WorkspaceBusy(RuntimeError):
    """Another writer holds the workspace and the caller asked not to wait."""


class LockUnsupported(RuntimeError):
    """The workspace's file system has no flock: one writer at a time cannot be guaranteed there."""


def holder(root: Path) -> dict | None:
    """Who holds (or last held) the lock, as it wrote itself down; None if nobody ever did."""
    path = lock_dir(root) / HOLDER_FILE
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

    state = lock_dir(root)
    # One instance per path, shared by all threads: re-entrant in-process (flows may run subflows in threads).
    lock = FileLock(state / LOCK_FILE, is_singleton=True, thread_local=False, fallback_to_soft=False)
    outermost = not lock.is_locked
    try:
        _acquire(lock, state, timeout=0)
    except Timeout:
        message = f"workspace {Path(root)} is being changed by {describe(holder(root))}"
        if not wait:
            raise WorkspaceBusy(f"{message}; not waiting (--no-wait)") from None
        while True:
            log(f"{message}; waiting for it to finish")
            try:
                _acquire(lock, state, timeout=WAIT_NOTICE_EVERY_S)
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


def _acquire(lock, folder: Path, timeout: float) -> None:
    """`lock.acquire`, with a file system that has no flock said in one line."""
    try:
        lock.acquire(timeout=timeout)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        raise LockUnsupported(
            f"{folder} is on a file system without flock: lfsd cannot guarantee one writer there; "
            "keep the workspace on a local file system"
        ) from e
