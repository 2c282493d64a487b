"""The writer lock's place and backend (integrity issue, point 5): one lock file per workspace whatever
$LFSD_STATE_DIR says, and no soft fallback a SIGKILL could leave behind (the cross-process behaviour
is proven with real processes in tests/integration/test_writers.py)."""

from __future__ import annotations

import errno

import pytest

from components.workspace import lock as lock_module
from components.workspace.lock import LOCK_FILE, LockUnsupported, writer_lock


def test_the_lock_lives_in_the_workspace_whatever_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LFSD_STATE_DIR", str(tmp_path / "elsewhere"))
    with writer_lock(tmp_path / "ws", "test", wait=False):
        assert (tmp_path / "ws" / ".lfsd" / LOCK_FILE).exists()
    assert not (tmp_path / "elsewhere" / LOCK_FILE).exists()
    assert (tmp_path / "ws" / ".lfsd" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_file_system_without_flock_is_refused_not_soft_locked(tmp_path, monkeypatch):
    import filelock._native._unix as unix

    def no_flock(fd: int) -> bool:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(unix, "lock_fd_nonblocking", no_flock)  # what such a file system answers
    (tmp_path / "ws").mkdir()
    with pytest.raises(LockUnsupported, match="without flock"), writer_lock(tmp_path / "ws", "test", wait=False):
        pass
    leftovers = sorted(p.name for p in (tmp_path / "ws" / ".lfsd").iterdir() if p.name != ".gitignore")
    assert leftovers in ([], [LOCK_FILE])  # no marker that a later writer would have to wait on
    monkeypatch.undo()
    with writer_lock(tmp_path / "ws", "after", wait=False):  # a normal file system again: taken at once
        pass
    assert lock_module.holder(tmp_path / "ws") is None
