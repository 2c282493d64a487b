"""Content hashes of files, and the one error for bytes that differ from what was recorded when they
were written (a flipped bit in a cache, a remote or a store; a file replaced on purpose).

Used where lfsd reads back what it wrote: a checkpoint's weight files against its ledger entry
(`components.lifelong.checkpoint.verify_task_files`), a DVC restore against the commit's `.dvc` file
(`components.versioning.restore`). The MLflow side has its own record
(`components.registry.integrity`), hashed with `file_digest` too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


class CorruptFile(ValueError):
    """A file's bytes differ from the hash recorded when it was written; nothing may be read from it."""

    def __init__(self, path: Path | str, algorithm: str, expected: str, found: str, recorded_in: str, advice: str = ""):
        self.path, self.expected, self.found = str(path), expected, found
        tail = f"; {advice}" if advice else ""
        super().__init__(
            f"{path}: {algorithm} {found} differs from {expected} recorded in {recorded_in}: the file is corrupt "
            f"and was not used{tail}"
        )


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, streamed (a large file never sits in memory whole)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()
