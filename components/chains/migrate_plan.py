"""What `lfsd migrate` reads before it writes anything: is the new base usable for this chain, which
concepts move and with which recorded settings, which were erased, and is every dataset there.

Everything here reads; a `MigrationRefused` leaves git, DVC, the registry and the old chain as they were.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

from components.workspace.layout import Workspace
from components.workspace.side_chain import BASES_DIR, SideChain


class MigrationRefused(ValueError):
    """Input a migration cannot work with (the base, the label, a dataset); nothing was changed."""


@dataclass(frozen=True)
class Move:
    """One concept to learn on the new chain: its old ledger entry and how it was trained."""

    name: str
    class_word: str
    token: str
    dataset: Path  # data/concepts/<name>: the chain's own versioned dataset
    training: object  # TrainingConfig as recorded: the workspace's at the concept's commit, method/steps as trained


def check_new_base(ws: Workspace, folder: Path) -> dict:
    """The checks of `lfsd init --base` (`model.base_folder.check_base_folder`), then the ones only a
    chain can make: not the chain's own base, the same kind of base (the KD captions in params.yaml are
    the chain's), and a resolution the concepts' shots can give without upsampling. A prediction type other
    than the old base's is allowed: the training target follows the base (`model.losses`). Returns what
    was read (resolution, prediction type, hash)."""
    from components.lifelong.ledger import folder_hash
    from components.model.base_folder import BaseFolderError, check_base_folder
    from components.model.pipeline import load
    from components.workspace.layout import is_sd_folder

    folder = Path(folder)
    try:
        check_base_folder(folder)
    except BaseFolderError as e:
        raise MigrationRefused(f"not a usable base: {e}") from None
    ledger = ws.ledger()
    if ledger is None:
        raise MigrationRefused(f"{ws.root}: the chain holds no concept yet; nothing to migrate")
    new_hash = folder_hash(folder)
    if new_hash == ledger.base_hash:
        raise MigrationRefused(f"{folder}: this is the base the chain is already on (hash {new_hash[:12]}...)")
    if is_sd_folder(folder) != is_sd_folder(ws.base_dir):
        kinds = {True: "a Stable Diffusion folder", False: "an lfsd bundle"}
        raise MigrationRefused(
            f"{folder}: {kinds[is_sd_folder(folder)]}, the chain's base is {kinds[is_sd_folder(ws.base_dir)]}: "
            "the KD captions in params.yaml (training.kd_templates) are the old base's; start a workspace on it "
            "with `lfsd init DIR --base` instead"
        )
    new, old = load(folder), load(ws.base_dir)
    return {
        "hash": new_hash,
        "resolution": new.image_size,
        "prediction_type": new.prediction_type,
        "old_resolution": old.image_size,
        "old_prediction_type": old.prediction_type,
    }


def check_shots(moves: list[Move], resolution: int) -> None:
    """Training resizes a concept's shots to the base's resolution (`model.references`): a base larger than
    a concept's smallest shot would learn it from upsampled, blurred pixels. Refused, naming the concept."""
    from PIL import Image

    from components.validation.rules import IMAGE_SUFFIXES

    for m in moves:
        sides = [min(Image.open(p).size) for p in sorted(m.dataset.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if sides and min(sides) < resolution:
            raise MigrationRefused(
                f"the new base draws {resolution} px, {m.name}'s shots are {min(sides)} px on their short side: "
                f"training would upsample them; onboard larger shots, or choose a base of {min(sides)} px or less"
            )


def recorded_training(ws: Workspace, checkpoint: Path):
    """How a concept was trained: the `training` section of the workspace's params.yaml at the commit that
    learned it (seed, lr, rank, KD...), with the method and steps its checkpoint's training record says."""
    import json

    from components.config import load_params
    from components.erasure.record import top_folder
    from components.lifelong.checkpoint import TRAINING_FILE
    from components.versioning.git import read_blob
    from components.versioning.store import committed_record

    commit = committed_record(ws.root, top_folder(ws.rel(checkpoint))).commit
    blob = read_blob(ws.root, f"{commit}:params.yaml")
    training = ws.params.training
    if blob is not None:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "params.yaml").write_bytes(blob)
            training = load_params(Path(tmp) / "params.yaml").training
    record = json.loads((Path(checkpoint) / TRAINING_FILE).read_text())
    return dataclasses.replace(training, method=record.get("method", training.method), steps=record["steps"])


def plan_moves(ws: Workspace, new: SideChain) -> tuple[list[Move], list[str]]:
    """The concepts of the old chain the new chain does not hold yet, in the old chain's order, and the
    names the new chain holds. The new chain must be a prefix of the old chain's live concepts: a concept
    erased after it was migrated is refused here (never brought back, never silently kept)."""
    from components.lifelong import read_ledger

    old = read_ledger(ws.latest_checkpoint()).entries
    done = new.learned_names()
    live = [e.name for e in old]
    if live[: len(done)] != done:
        raise MigrationRefused(
            f"the new chain {new.label} holds {done}, the old chain's concepts are now {live}: a concept was "
            f"erased or reordered after it was migrated; erase it from a fresh migration (`lfsd migrate` "
            f"with another --name)"
        )
    moves = [
        Move(e.name, e.class_word, e.token, Path(e.references), recorded_training(ws, Path(e.checkpoint)))
        for e in old[len(done) :]
    ]
    return moves, done


def erased_names(ws: Workspace) -> list[str]:
    """One line per concept erased from the chain (`erasure.record.committed_records`): it is not migrated."""
    from components.erasure.record import committed_records

    return [
        f"{r.concept} (erased {r.erased_at} by {r.requested_by}: {r.reason}; record {r.git_path()})"
        for r in committed_records(ws)
    ]


def check_datasets(ws: Workspace, moves: list[Move], log) -> None:
    """Every dataset to learn is in the working tree, or restored from DVC now; one that cannot be is refused
    before anything is committed."""
    from components.versioning import restore
    from components.versioning.proc import VersioningError

    missing = [ws.rel(m.dataset) for m in moves if not m.dataset.is_dir()]
    if not missing:
        return
    log(f"restoring from DVC: {', '.join(missing)}")
    try:
        restore(ws.root, missing)
    except VersioningError as e:
        why = e.detail.strip().splitlines()[-1][:200] if e.detail and e.detail.strip() else str(e)
        raise MigrationRefused(
            f"{', '.join(missing)}: cannot be restored from DVC ({why}); nothing was migrated, nothing changed"
        ) from None


def base_rel(label: str) -> str:
    return f"{BASES_DIR}/{label}"
