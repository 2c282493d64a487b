"""A command on a pseudo-terminal, as a user runs it: it sees a TTY (progress bars, colours), and Ctrl-C
is SIGINT to its whole process group. Tests read what it printed; as a script it records one command's
terminal to a file (docs/figures/first-hour-onboard.txt):

    python -m tests.integration.terminal OUT.txt -- lfsd onboard CONCEPT_FOLDER
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Terminal:
    """A command on a pty in a session of its own; everything it prints is collected as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns, like a window
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_signals_as_a_shell_leaves_them,
        )
        os.close(slave)
        self.master, self.chunks = master, []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every writer of the pty has gone
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    @property
    def screen(self) -> str:
        """What a reader sees once it is over: colours and cursor codes dropped, each line as its last
        redraw left it (a progress bar redrawn in place is its final state)."""
        text = ANSI.sub("", self.text.replace("\r\n", "\n"))
        return "\n".join(line.rstrip("\r").split("\r")[-1] for line in text.split("\n"))

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while marker not in self.text:
            assert self.proc.poll() is None, f"ended ({self.proc.returncode}) before {marker!r}:\n{self.text[-4000:]}"
            assert time.time() < deadline, f"no {marker!r} after {timeout:.0f} s:\n{self.text[-4000:]}"
            time.sleep(0.1)

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float) -> int:
        """Its exit status within `timeout` s; else it is killed, with what it started in sessions of its own
        (Prefect's temporary server, Ray): a test that gives up on it leaks no server."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                started = _descendants(self.proc.pid)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                _kill(started)
            self.reader.join(timeout=5)
            os.close(self.master)

    def abort_with_stacks(self, grace: float = 5.0) -> None:
        """SIGABRT: a Python process run with PYTHONFAULTHANDLER=1 prints every thread's stack as it dies (read
        them in `text`); what it started in sessions of its own is killed after it."""
        started = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGABRT)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        _kill(started)


def _signals_as_a_shell_leaves_them() -> None:
    """Ctrl-C and Ctrl-\\ at their defaults in the child, as an interactive shell starts a command. A test run
    launched in the background by a non-interactive shell inherits SIGINT and SIGQUIT *ignored* (and SIGHUP
    under nohup), and Python keeps an inherited SIG_IGN: launched with `setsid nohup bash -c 'pytest ...' &`,
    `lfsd onboard` ran with SigIgn 0x1001007 and test_cli_interrupt failed every time, the way it failed in
    every fresh-clone run here since 2026-12-05; with this, it passes launched that way (2026-12-08)."""
    for s in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(s, signal.SIG_DFL)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill(processes: list[psutil.Process]) -> None:
    for p in processes:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def main(argv: list[str]) -> int:
    out, cmd = Path(argv[0]), argv[argv.index("--") + 1 :]
    env = dict(os.environ, TERM=os.environ.get("TERM", "xterm-256color"))
    term = Terminal(cmd, Path.cwd(), env)
    rc = term.finish(timeout=3600)
    out.write_text(f"$ {' '.join(cmd)}\n{term.screen}\n[exit {rc}]\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
