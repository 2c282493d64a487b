"""The inbox picks a concept folder up only once it has settled: nothing in it (names, sizes, mtimes)
changed for `inbox_settle_seconds`. Times are explicit (`now`, os.utime): no sleeping."""

from __future__ import annotations

import os
import time
from pathlib import Path

from components.onboarding.inbox import ready_folders, waiting_folders

SETTLE = 10.0


def _age(path: Path, seconds: float) -> None:
    """Set the mtime of `path` and everything below it `seconds` into the past (files first: setting
    a folder's own time is the last change to it)."""
    t = time.time() - seconds
    for p in sorted(path.rglob("*"), key=lambda q: len(q.parts), reverse=True) + [path]:
        os.utime(p, (t, t), follow_symlinks=False)


def _concept(folder: Path, shots: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(shots):
        (folder / f"{i:02d}.png").write_bytes(b"\x89PNG" + bytes([i]) * 100)
    (folder / "concept.yaml").write_text("name: zorudo\nclass_word: square\n")
    return folder


def test_a_folder_with_a_just_written_file_is_not_ready_until_the_settle_time_passed(tmp_path):
    folder = _concept(tmp_path / "00-zorudo")
    now = time.time()
    assert ready_folders(tmp_path, SETTLE, now=now) == []
    assert waiting_folders(tmp_path, SETTLE, now=now) == [folder]
    assert ready_folders(tmp_path, SETTLE, now=now + SETTLE - 1) == []
    assert ready_folders(tmp_path, SETTLE, now=now + SETTLE + 1) == [folder]
    assert waiting_folders(tmp_path, SETTLE, now=now + SETTLE + 1) == []


def test_a_settled_folder_is_ready_and_every_kind_of_change_resets_it(tmp_path):
    folder = _concept(tmp_path / "00-zorudo")
    _age(folder, 60)
    now = time.time()
    assert ready_folders(tmp_path, SETTLE, now=now) == [folder]

    (folder / "00.png").write_bytes(b"\x89PNG" + b"\x07" * 500)  # a file grows (still being copied)
    os.utime(folder / "00.png", None)
    now = time.time()
    assert ready_folders(tmp_path, SETTLE, now=now) == []
    assert ready_folders(tmp_path, SETTLE, now=now + SETTLE + 1) == [folder]

    _age(folder, 60)
    assert ready_folders(tmp_path, SETTLE) == [folder]
    (folder / "03.png").write_bytes(b"\x89PNG")  # a new name appears ...
    os.utime(folder / "03.png", (time.time() - 60,) * 2)  # ... even with an old mtime (cp -a, rsync -t)
    assert ready_folders(tmp_path, SETTLE) == []

    _age(folder, 60)
    (folder / "03.png").rename(folder / "04.png")  # a rename
    assert ready_folders(tmp_path, SETTLE) == []

    _age(folder, 60)
    os.utime(folder / "01.png", (time.time() - 5,) * 2)  # only an mtime changed, 5 s ago
    assert ready_folders(tmp_path, SETTLE) == []
    assert ready_folders(tmp_path, 4.0) == [folder]


def test_changes_deep_inside_and_hidden_temporary_files_count(tmp_path):
    folder = _concept(tmp_path / "00-zorudo")
    (folder / "extra").mkdir()
    (folder / "extra" / "note.txt").write_text("x")
    _age(folder, 60)
    assert ready_folders(tmp_path, SETTLE) == [folder]
    (folder / "extra" / "note.txt").write_text("changed")
    assert ready_folders(tmp_path, SETTLE) == []
    _age(folder, 60)
    (folder / ".00.png.Xa1b2c").write_bytes(b"partial")  # rsync's temporary file
    assert ready_folders(tmp_path, SETTLE) == []


def test_oldest_name_first_hidden_folders_and_files_skipped_missing_inbox_empty(tmp_path):
    inbox = tmp_path / "inbox"
    b = _concept(inbox / "02-bobo")
    a = _concept(inbox / "01-abab")
    _concept(inbox / ".done" / "00-old")
    _concept(inbox / ".rejected" / "00-bad")
    (inbox / "stray.png").write_bytes(b"x")
    _age(inbox, 60)
    assert ready_folders(inbox, SETTLE) == [a, b]
    assert waiting_folders(inbox, SETTLE) == []
    assert ready_folders(tmp_path / "nowhere", SETTLE) == []
    assert waiting_folders(tmp_path / "nowhere", SETTLE) == []


def test_zero_settle_time_takes_everything_present(tmp_path):
    folder = _concept(tmp_path / "00-zorudo")
    assert ready_folders(tmp_path, 0, now=time.time() + 0.001) == [folder]
