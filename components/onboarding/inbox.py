"""Which concept folders in the inbox are ready to onboard: those that have settled.

A folder still being copied into the inbox must not be picked up half-written. A folder is ready once
nothing in it changed for `settle_seconds`: no file or sub-folder added, removed or renamed, and no
file's size, content or modification time changed. Every such change moves a modification time
forward (a name change moves its folder's mtime; a write moves its file's; setting an mtime moves
it too), so a folder is ready when the newest mtime of the folder and of everything below it,
hidden entries included (rsync's temporary files), is at least `settle_seconds` old.

Copies that preserve modification times (`cp -a`, `rsync -t`) stay unready while they run: each
entry they create moves its folder's mtime to now, and a file being written keeps a current mtime
until it is closed; they set the old times only once a file (or the whole folder) is complete.

Folders whose name starts with "." (`.done`, `.rejected`) are the inbox's own and never ready.
This module must not import prefect.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def last_change(folder: Path) -> float | None:
    """The newest mtime of `folder` and of every entry below it (symbolic links not followed), or
    None when the folder changes under the walk (an entry vanished: still being written)."""
    try:
        newest = folder.lstat().st_mtime
        for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise):
            for name in dirnames + filenames:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    except FileNotFoundError:
        return None
    return newest


def _raise(error: OSError) -> None:
    raise error


def ready_folders(inbox: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """Concept folders directly under `inbox` in which nothing changed for `settle_seconds` (as of
    `now`, default the current time), oldest name first; hidden folders are skipped. A missing inbox
    has none."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return []
    now = time.time() if now is None else now
    ready = []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        changed = last_change(folder)
        if changed is not None and now - changed >= settle_seconds:
            ready.append(folder)
    return ready


def waiting_folders(inbox: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """Concept folders under `inbox` that are not ready yet (still changing), oldest name first."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return []
    ready = set(ready_folders(inbox, settle_seconds, now))
    return sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".") and p not in ready)
