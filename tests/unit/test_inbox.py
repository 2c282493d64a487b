"""The inbox picks a concept folder up only once it has settled: nothing in it (names, sizes, mtimes)
changed for `inbox_settle_seconds`. Times are explicit (`now`, os.utime): no sleeping."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from components.onboarding.inbox import (
    REPORT_FILE,
    InboxError,
    ensure_inbox,
    ready_folders,
    refuse_links,
    take,
    waiting_folders,
)

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


# --- trust nothing in the inbox (integrity issue, points 2 and 3) -------------------------------------


def test_a_link_to_a_folder_elsewhere_is_never_ready_and_is_moved_aside_with_a_report(tmp_path):
    inbox, outside = tmp_path / "inbox", _concept(tmp_path / "elsewhere" / "00-zorudo")
    inbox.mkdir()
    (inbox / "linked").symlink_to(outside)
    _age(outside, 60)
    assert ready_folders(inbox, 0.0) == [] and waiting_folders(inbox, 0.0) == []
    said: list[str] = []
    refuse_links(inbox, said.append)
    moved = inbox / ".rejected" / "linked"
    assert moved.is_symlink() and not (inbox / "linked").exists()
    assert "symbolic link" in (inbox / ".rejected" / "linked.REJECTED.txt").read_text() and said
    assert sorted(p.name for p in outside.iterdir()) == ["00.png", "01.png", "02.png", "concept.yaml"]  # untouched


def test_a_report_is_never_written_through_a_link_the_folder_brought(tmp_path):
    inbox = tmp_path / "inbox"
    folder = _concept(inbox / "00-zorudo")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (folder / REPORT_FILE).symlink_to(victim)

    def refuse(_folder):
        raise ValueError("bad \x1b[31mname\nforged line")

    assert take(inbox, folder, refuse, lambda _m: None) == []
    report = inbox / ".rejected" / "00-zorudo" / REPORT_FILE
    assert victim.read_text() == "precious\n"
    assert not report.is_symlink() and "\x1b" not in report.read_text()
    assert report.read_text().count("\n") == 2  # the message's own line break kept, nothing forged


def test_a_crash_quarantines_the_folder_and_the_queue_goes_on_but_an_outage_does_not(tmp_path):
    from components.versioning import VersioningError

    inbox = tmp_path / "inbox"
    crashing, good, waiting = (_concept(inbox / n) for n in ("00-crash", "01-good", "02-outage"))

    def onboard(folder):
        if folder == crashing:
            raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
        if folder == waiting:
            raise VersioningError("data/concepts/x", "dvc push", "connection refused")
        return [folder.name]

    done = take(inbox, crashing, onboard, lambda _m: None) + take(inbox, good, onboard, lambda _m: None)
    assert done == ["01-good"] and (inbox / ".done" / "01-good").is_dir()
    assert "UnicodeEncodeError" in (inbox / ".rejected" / "00-crash" / REPORT_FILE).read_text()
    with pytest.raises(VersioningError):
        take(inbox, waiting, onboard, lambda _m: None)
    assert waiting.is_dir()  # not the folder's fault: it stays for the next tick


def test_the_inbox_is_git_ignored_and_a_linked_rejected_folder_is_refused(tmp_path):
    inbox = tmp_path / "inbox"
    ensure_inbox(inbox)
    assert (inbox / ".gitignore").read_text().splitlines()[-1] == "*"
    folder = _concept(inbox / "00-zorudo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox / ".rejected").symlink_to(elsewhere)
    with pytest.raises(InboxError):
        take(inbox, folder, lambda f: (_ for _ in ()).throw(ValueError("no")), lambda _m: None)
    assert list(elsewhere.iterdir()) == [] and folder.is_dir()
