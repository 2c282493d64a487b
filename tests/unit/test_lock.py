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


def test_pull_takes_the_writer_lock(tmp_path):
    """`lfsd pull` changes the working tree a writer reads: with a writer holding the workspace it waits
    (here: refuses, wait=False) before touching anything."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from components.erasure.pull import pull
    from components.workspace.lock import WorkspaceBusy

    ws = tmp_path / "ws"
    ws.mkdir()
    code = "import sys, time\nfrom components.workspace.lock import writer_lock\n"
    code += "with writer_lock(sys.argv[1], 'onboard x'):\n    print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(ws)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkspaceBusy, match="onboard x"):
            pull(SimpleNamespace(root=ws), wait=False)  # the lock comes before anything of the workspace is read
    finally:
        holder.kill()
        holder.wait()


def test_a_folder_leaves_in_one_rename_so_a_reader_never_meets_half_of_it(tmp_path, monkeypatch):
    import shutil

    from components.versioning.restore import remove_whole

    folder = tmp_path / "checkpoints" / "03-x"
    (folder / "unet_lora").mkdir(parents=True)
    (folder / "unet_lora" / "w.safetensors").write_bytes(b"w")
    (folder / "ledger.json").write_text("{}")
    seen = []
    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", lambda p, *a, **k: (seen.append(folder.exists()), real_rmtree(p, *a, **k)))
    remove_whole(folder)
    assert seen == [False]  # gone from its name before a single file was deleted
    assert list((tmp_path / "checkpoints").iterdir()) == []
