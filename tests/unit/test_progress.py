"""Progress bars: an ETA on a terminal, nothing at all in a log."""

from __future__ import annotations

import io

from components.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_nothing():
    out = io.StringIO()
    with progress("tasks", 3, stream=out) as advance:
        for _ in range(3):
            advance()
    assert out.getvalue() == ""


def test_a_terminal_gets_done_of_total_and_an_eta():
    out = _Terminal()
    with progress("tasks", 4, stream=out) as advance:
        advance(3)
    text = out.getvalue()
    assert "tasks" in text and "3/4" in text and "ETA" in text


def test_disabled_means_nothing_even_on_a_terminal():
    out = _Terminal()
    with progress("tasks", 2, stream=out, enabled=False) as advance:
        advance(2)
    assert out.getvalue() == ""


def test_a_resumed_bar_starts_part_way():
    out = _Terminal()
    with progress("steps", 10, stream=out, start=6) as advance:
        advance(1)
    assert "7/10" in out.getvalue()
