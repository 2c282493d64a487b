"""An erasure request: what is removed, from where, when, why and by whom.

The record is written before anything is removed and committed by git (`erasures/NN-name.json`) in
the same commit that takes the concept out of the chain; the same record sits in the removal's
checkpoint (`erasure.json`) and on the new model version's MLflow run. It names places, never the
photos or their hashes: reading it tells an auditor what happened without re-identifying anything.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.workspace.layout import RECORDS_DIR, Workspace

ERASURE_FILE = "erasure.json"  # inside the removal's checkpoint folder: marks it as a removal


class ErasureRefused(ValueError):
    """The request cannot be carried out as asked (unknown name, erased before, gate); nothing changed."""


@dataclass
class ErasureRecord:
    concept: str
    class_word: str
    token: str
    task: int  # the task that learned it (its adapter `taskN`, its artifacts `checkpoint_NN`)
    reason: str
    requested_by: str  # the OS user who ran the command
    host: str
    erased_at: str  # UTC, ISO 8601
    removal_checkpoint: str  # checkpoints/NN-forget-name: the chain without the concept
    dataset: str  # data/concepts/name
    checkpoint: str  # checkpoints/NN-name (its LoRA and token, learned from the photos)
    model_versions: list[str] = field(default_factory=list)  # registered versions that held it
    runs: list[str] = field(default_factory=list)  # MLflow runs whose sample grids drew it
    inbox_copies: list[str] = field(default_factory=list)  # the submitted folder, kept by the inbox
    dvc_places: list[str] = field(default_factory=list)  # "cache", "remote <name>"
    measured: dict = field(default_factory=dict)  # fidelity of the erased concept before/after (no photos)
    forced: bool = False  # erased although the chain without it failed the gate (production held it)
    retrained: list[str] = field(default_factory=list)  # later concepts relearned without it (--retrain-later)
    dropped_checkpoints: list[str] = field(default_factory=list)  # checkpoint folders out of the chain in its commit

    def purged_checkpoints(self) -> list[str]:
        """The checkpoint folders whose DVC objects are purged: the one that learned the concept, when the
        removal takes it out of the chain (a folder the chain still uses for other tasks stays)."""
        if not self.dropped_checkpoints:  # records written before `dropped_checkpoints` existed
            return [self.checkpoint]
        return [c for c in self.dropped_checkpoints if c == top_folder(self.checkpoint)]

    def git_path(self) -> str:
        return f"{RECORDS_DIR}/{Path(self.removal_checkpoint).name.split('-', 1)[0]}-{self.concept}.json"

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    @classmethod
    def read(cls, path: Path) -> ErasureRecord:
        return cls(**json.loads(Path(path).read_text()))


def top_folder(checkpoint: str) -> str:
    """The versioned checkpoint folder (`checkpoints/NN-name`) a task's checkpoint path lies in: a
    relearned task lives inside its removal's folder (`checkpoints/NN-forget-x/taskK`)."""
    parts = Path(checkpoint).as_posix().split("/")
    return "/".join(parts[:2])


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def committed_records(ws: Workspace) -> list[ErasureRecord]:
    """Every erasure git has committed at HEAD, oldest first."""
    from components.versioning.git import committed_names, read_blob

    out = []
    for name in sorted(committed_names(ws.root, RECORDS_DIR)):
        blob = read_blob(ws.root, f"HEAD:{RECORDS_DIR}/{name}")
        if blob:
            out.append(ErasureRecord(**json.loads(blob)))
    return out


def plan(ws: Workspace, name: str, reason: str, removal_checkpoint: Path, retrain_later: bool = False) -> ErasureRecord:
    """The record of erasing `name` from the committed chain (`retrain_later`: the concepts after it are
    relearned, their old checkpoints leave the chain too); ErasureRefused (naming what is known) when it
    cannot be erased. Reads only: changes nothing."""
    if not str(reason).strip():
        raise ErasureRefused(
            "an erasure needs a reason (--reason TEXT): it is recorded in git and on the model version"
        )
    ledger = ws.ledger()
    names = ledger.names() if ledger else []
    if name not in names:
        earlier = [r for r in committed_records(ws) if r.concept == name]
        if earlier:
            raise ErasureRefused(
                f"{name!r} was already erased on {earlier[-1].erased_at} by {earlier[-1].requested_by} "
                f"({earlier[-1].reason}); record {earlier[-1].git_path()}; nothing to do"
            )
        raise ErasureRefused(
            f"{name!r} is not a concept of this workspace's chain; learned: {', '.join(names) or 'none'}"
        )
    if len(names) == 1:
        raise ErasureRefused(
            f"{name!r} is the only concept of the chain: removing it would leave the bare base, which "
            f"is not a model version lfsd registers; onboard another concept first, or retire the model"
        )
    entry = next(e for e in ledger.entries if e.name == name)
    inbox = ws.root / ws.params.pipeline.inbox
    copies = [
        ws.rel(p)
        for sub in (".done", ".rejected")
        for p in sorted((inbox / sub).glob("*"))
        if p.is_dir() and _names(p, name)
    ]
    held_by, runs = _mlflow_holders(ws, name)
    later = [e for e in ledger.entries if e.task > entry.task] if retrain_later else []
    kept = [e for e in ledger.entries if e is not entry and e not in later]
    folders = lambda entries: {top_folder(e.checkpoint) for e in entries}
    return ErasureRecord(
        retrained=[e.name for e in later],
        dropped_checkpoints=sorted(folders(ledger.entries) - folders(kept)),
        model_versions=held_by,
        runs=runs,
        dvc_places=_dvc_places(ws),
        concept=name,
        class_word=entry.class_word,
        token=entry.token,
        task=entry.task,
        reason=str(reason).strip(),
        requested_by=getpass.getuser(),
        host=socket.gethostname(),
        erased_at=now_utc(),
        removal_checkpoint=ws.rel(removal_checkpoint),
        dataset=f"{ws.params.pipeline.data_dir}/{name}",
        checkpoint=Path(entry.checkpoint).as_posix(),
        inbox_copies=copies,
    )


def _mlflow_holders(ws: Workspace, name: str) -> tuple[list[str], list[str]]:
    """(model versions, runs) whose chain held `name`."""
    from components.registry.erased_versions import runs_holding, versions_holding
    from components.workspace.mlflow_store import client as workspace_client
    from components.workspace.mlflow_store import open_tracking

    exp = open_tracking(ws)
    client = workspace_client(ws)
    return (
        [str(v.version) for v in versions_holding(client, ws.params.pipeline.model_name, name)],
        [r.info.run_id for r in runs_holding(client, exp, name)],
    )


def _dvc_places(ws: Workspace) -> list[str]:
    from dvc.repo import Repo

    with Repo(str(ws.root)) as repo:
        return ["cache", *(f"remote {name}" for name in repo.config.get("remote", {}))]


def _names(folder: Path, name: str) -> bool:
    """Whether an inbox folder submitted concept `name` (its concept.yaml says so)."""
    import yaml

    meta = folder / "concept.yaml"
    try:
        return meta.is_file() and (yaml.safe_load(meta.read_text()) or {}).get("name") == name
    except yaml.YAMLError:
        return False
