"""Subprocess plumbing: one place that runs dvc/git with the workspace env and turns failures into
errors that carry the command's own message."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from components.versioning.env import dvc_env

T = TypeVar("T")


class VersioningError(RuntimeError):
    """A versioning step failed; `path` and `step` say what and where, the message says why."""

    def __init__(self, path: str, step: str, detail: str):
        self.path, self.step, self.detail = path, step, detail
        super().__init__(f"versioning {path!r} failed at step {step!r}: {detail}")


class CommandError(RuntimeError):
    """A dvc/git command exited non-zero; callers translate it into a VersioningError."""

    def __init__(self, args: Sequence[str], returncode: int, output: str):
        self.args_, self.returncode, self.output = list(args), returncode, output
        super().__init__(f"{' '.join(args[:3])} ... exited {returncode}: {output}")


def dvc_command() -> list[str]:
    """The venv's own dvc next to this interpreter (same version as the library); else `-m dvc`."""
    exe = Path(sys.executable).with_name("dvc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dvc"]


def run(
    args: Sequence[str],
    repo_root: str | Path,
    *,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command in the repo with dvc_env(); raise CommandError (stderr tail) when check fails."""
    env = dvc_env(repo_root) | (extra_env or {})
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}  # never prompt
    proc = subprocess.run(list(args), cwd=repo_root, env=env, capture_output=True, **feed)
    if check and proc.returncode != 0:
        output = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise CommandError(args, proc.returncode, output[-2000:])
    return proc


def run_dvc(args: Sequence[str], repo_root: str | Path, *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return run([*dvc_command(), *args], repo_root, check=check)


def guarded(path: str, step: str, fn: Callable[[], T]) -> T:
    """Run fn, translating a failed command into VersioningError(path, step)."""
    try:
        return fn()
    except CommandError as e:
        raise VersioningError(path, step, e.output or f"exit code {e.returncode}") from e


def dvc_step(path: str, step: str, args: list[str], root: Path):
    """One dvc command as a named step of versioning `path`."""
    return guarded(path, step, lambda: run_dvc(args, root))
