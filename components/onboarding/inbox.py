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

Trust: the inbox is where people (or scripts) drop data, so nothing in it is followed. Only real
folders directly inside it are taken (a symbolic link is moved to `.rejected/` with a report beside
it, never onboarded); reports are written with no-follow, create-new semantics; the inbox holds a `*`
.gitignore so `git add -A` never puts raw photos into git, where an erasure could not reach them;
and one folder whose handling raises anything (a crash included) is quarantined with the reason, so
it cannot block the queue. An outage of a service (DVC remote, MLflow, Prefect) is not the folder's
fault: the folder stays for the next tick and the tick fails loudly.
This module must not import prefect.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from components.validation.report import ValidationError, shown
from components.workspace.outages import service_outage

DONE, REJECTED = ".done", ".rejected"
REPORT_FILE = "REJECTED.txt"


class InboxError(RuntimeError):
    """The inbox's own folders are not what they must be (e.g. `.rejected` is a symbolic link)."""


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
    for folder in _real_folders(inbox):
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
    return [p for p in _real_folders(inbox) if p not in ready]


def _real_folders(inbox: Path) -> list[Path]:
    """Directories directly inside `inbox` by lstat (a link to a folder is not one), hidden ones skipped."""
    here = inbox.resolve()
    return sorted(
        p
        for p in inbox.iterdir()
        if not p.name.startswith(".") and stat.S_ISDIR(os.lstat(p).st_mode) and p.resolve().parent == here
    )


def ensure_inbox(inbox: Path) -> None:
    """The inbox folder with a `*` .gitignore inside: raw photos never reach git by a careless `git add -A`."""
    inbox.mkdir(parents=True, exist_ok=True)
    ignore = inbox / ".gitignore"
    if not ignore.is_file() or ignore.is_symlink():
        ignore.unlink(missing_ok=True)
        _write_new(ignore, "# lfsd inbox: raw submissions are never committed (their datasets are, via DVC)\n*\n")


def refuse_links(inbox: Path, log: Callable[[str], None]) -> None:
    """Move every symbolic link directly in the inbox (not hidden) to `.rejected/`, the reason beside it."""
    for link in sorted(p for p in inbox.iterdir() if not p.name.startswith(".") and p.is_symlink()):
        dest = _move(inbox, link, REJECTED)
        reason = f"{link.name} is a symbolic link (-> {os.readlink(dest)}): the inbox takes only real folders"
        _write_new(dest.with_name(dest.name + "." + REPORT_FILE), shown(reason) + "\n")
        log(f"refused {shown(link.name)}: {shown(reason)}")


def take(inbox: Path, folder: Path, onboard: Callable[[Path], list], log: Callable[[str], None]) -> list:
    """Onboard one settled folder, then file it away: `.done/` on success; `.rejected/` with REJECTED.txt
    when it is refused or its handling raises anything but a service outage (then it stays and the
    error propagates: the next tick tries again)."""
    try:
        results = onboard(folder)
    except Exception as e:
        if service_outage(e) is not None:
            raise
        why = str(e) if isinstance(e, ValidationError) else f"could not be onboarded ({type(e).__name__}: {e})"
        dest = _move(inbox, folder, REJECTED)
        _write_new(dest / REPORT_FILE, shown_lines(why) + "\n")
        log(f"rejected {shown(folder.name)} (moved to {REJECTED}/):\n{shown_lines(why)}")
        return []
    _move(inbox, folder, DONE)
    return results


def shown_lines(text: str) -> str:
    """Each line of a multi-line message escaped on its own (the message's own line breaks kept)."""
    return "\n".join(shown(line) for line in text.splitlines())


def _move(inbox: Path, entry: Path, sub: str) -> Path:
    """Rename `entry` (a folder or a link, never followed) to `inbox/sub/<name>`, replacing what is there."""
    target_dir = inbox / sub
    target_dir.mkdir(exist_ok=True)
    if not stat.S_ISDIR(os.lstat(target_dir).st_mode):
        raise InboxError(f"{target_dir} is not a real folder (a link?): refusing to move {entry.name} into it")
    dest = target_dir / entry.name
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)  # rmtree never follows links inside
    os.rename(entry, dest)  # same file system; a link is moved as a link
    return dest


def _write_new(path: Path, text: str) -> None:
    """Create `path` afresh, never through a link or over an existing file (O_EXCL | O_NOFOLLOW)."""
    if path.is_symlink() or path.is_file():
        path.unlink()  # a link is removed, not followed
    elif path.exists():
        shutil.rmtree(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
