"""The ledger: the ordered list of every concept learned so far, and the base they were learned on.

Each task checkpoint carries the ledger as it stood after that task (`ledger.json`), so the newest
checkpoint alone describes theta_k. On disk the pipeline writes paths relative to the workspace root
(a clone restored with `dvc pull` anywhere still resolves them); in memory every path is absolute.
There is one rule for turning the one into the other: a relative path is relative to the workspace
that holds the checkpoint, `<root>/checkpoints/NN-name/` (see `read_ledger`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

LEDGER_FILE = "ledger.json"


@dataclass
class LedgerEntry:
    task: int
    name: str
    class_word: str
    token: str
    references: str  # folder of the concept's versioned dataset (used at generation time only)
    checkpoint: str  # folder of the checkpoint that learned it
    adapter: str = "lora"  # how the task changed the UNet's K/V: a LoRA adapter or a full K/V delta
    # sha256 of each weight file of its checkpoint (path inside it -> hex), written with them and checked
    # before they are read (`checkpoint.verify_task_files`); empty in ledgers written before the check
    sha256: dict[str, str] = field(default_factory=dict)


@dataclass
class Ledger:
    base: str
    base_hash: str
    method: str
    entries: list[LedgerEntry] = field(default_factory=list)
    retired: int = 0  # highest task number a removed concept had (0: none removed); never given out again

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def next_task(self) -> int:
        """The task number a new concept gets: one past the highest ever used (a removed concept's
        number is never reused: its adapter name and artifact keys stay unambiguous)."""
        return max([self.retired, *(e.task for e in self.entries)]) + 1

    def without(self, name: str) -> Ledger:
        """This chain with concept `name` taken out (its token and K/V update no longer applied); every
        other entry, its task number and its checkpoint unchanged."""
        if name not in self.names():
            raise KeyError(name)
        return Ledger(
            self.base,
            self.base_hash,
            self.method,
            [e for e in self.entries if e.name != name],
            max(self.retired, *(e.task for e in self.entries)),
        )

    def before(self, task: int) -> Ledger:
        """The chain as it stood before task number `task` was learned: the entries below it, and every
        number below it taken, so the next task learned on it is `task` again (how `lfsd forget
        --retrain-later` relearns a later concept under its own number, adapter name and artifact keys)."""
        return Ledger(self.base, self.base_hash, self.method, [e for e in self.entries if e.task < task], task - 1)

    def save(self, path: Path) -> None:
        data = asdict(self)
        if not self.retired:  # ledgers of chains nothing was removed from stay byte-identical to earlier ones
            data.pop("retired")
        for entry in data["entries"]:  # so do entries written before their files were hashed
            if not entry["sha256"]:
                entry.pop("sha256")
        Path(path).write_text(json.dumps(data, indent=2))

    @classmethod
    def read(cls, path: Path) -> Ledger:
        """The ledger file exactly as written (paths unresolved)."""
        raw = json.loads(Path(path).read_text())
        return cls(
            raw["base"],
            raw["base_hash"],
            raw["method"],
            [LedgerEntry(**e) for e in raw["entries"]],
            raw.get("retired", 0),
        )

    def with_paths(self, fn) -> Ledger:
        """A copy with `fn` applied to the base, every reference and every checkpoint path ('' stays '')."""
        conv = lambda p: fn(p) if p else p
        return Ledger(
            conv(self.base),
            self.base_hash,
            self.method,
            [replace(e, references=conv(e.references), checkpoint=conv(e.checkpoint)) for e in self.entries],
            self.retired,
        )


def workspace_of(checkpoint: Path) -> Path:
    """The workspace root a checkpoint folder `<root>/checkpoints/NN-name` belongs to."""
    return Path(checkpoint).resolve().parent.parent


def read_ledger(checkpoint: Path) -> Ledger:
    """The ledger of `checkpoint` with every path absolute: as written if absolute, else relative to the
    checkpoint's workspace. The one way lfsd reads a chain from disk."""
    root = workspace_of(checkpoint)
    return Ledger.read(Path(checkpoint) / LEDGER_FILE).with_paths(
        lambda p: str(Path(p) if Path(p).is_absolute() else root / p)
    )


def relativize_ledger(checkpoint: Path, root: Path) -> Ledger:
    """Rewrite `checkpoint`'s ledger with paths relative to the workspace `root` (paths outside it stay
    absolute), so a clone restored with `dvc pull` anywhere resolves them."""
    root = Path(root).resolve()

    def rel(path: str) -> str:
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            return path

    ledger = Ledger.read(Path(checkpoint) / LEDGER_FILE).with_paths(rel)
    ledger.save(Path(checkpoint) / LEDGER_FILE)
    return ledger


class BaseMismatch(ValueError):
    """The base folder is not the one the chain was trained on: theta_k would be rebuilt on other weights."""


def verify_base(base_dir: Path, base_hash: str) -> None:
    """Raise BaseMismatch naming the folder unless its content hash is the chain's `base_hash`."""
    actual = folder_hash(base_dir)
    if actual != base_hash:
        raise BaseMismatch(
            f"{base_dir}: base hash {actual[:12]}... differs from {base_hash[:12]}..., the base the "
            f"chain was trained on; restore that base (e.g. `git checkout -- models/base` or "
            f"`dvc pull models/base.dvc`) or start a new workspace for this one (`lfsd init DIR --base`)"
        )


def folder_hash(folder: Path) -> str:
    """sha256 over (relative path, content) of every file: the base's identity."""
    h = hashlib.sha256()
    folder = Path(folder)
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()
