"""THE migration chain (`lfsd migrate --base NEW_FOLDER [--name LABEL]`): every live concept of the
workspace's chain learned again, in order, from its own dataset and with its recorded settings, on
another base: a side chain beside the old one (`workspace.side_chain`), registered as a new version of
the same model that production does not move to by itself.

    [lock] checks (base, label, erasures, datasets) -> catch up -> version the base (commit)
    per concept, [lock] each: recover the side chain -> next concept? -> train -> evaluate -> commit
    [lock, once nothing is left] register -> gate (tags only) -> scorecard (printed, MLflow, model card)

State is what git has committed: a concept whose checkpoint is committed on the side chain is never
trained again; one killed in flight is discarded and trained again (from its last Ray Train checkpoint
with Ray: the attempt is named after the chain, the concept, the chain before it and the method). The lock
is taken once per concept, so onboardings interleave; a concept onboarded meanwhile is the next to move.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.chains.catch_up import catch_up
from components.chains.migrate_plan import (
    MigrationRefused,
    Move,
    check_datasets,
    check_new_base,
    check_shots,
    erased_names,
    plan_moves,
)
from components.stepping import Log
from components.workspace.faults import die_here_if_asked
from components.workspace.layout import Workspace
from components.workspace.lock import writer_lock
from components.workspace.side_chain import CHAIN_TAG, SideChain, committed_labels, side_chain

__all__ = ["MigrationRefused", "MigrationResult", "default_label", "migrate"]


@dataclass
class MigrationResult:
    label: str
    chain: list[str]  # the new chain's concepts, in order
    trained: list[str] = field(default_factory=list)  # trained by this run (a rerun trains only what is left)
    erased: list[str] = field(default_factory=list)
    version: str | None = None
    gate: str = ""
    production: str | None = None
    scorecard: list[dict] = field(default_factory=list)
    scorecard_run: str | None = None


def default_label(folder: Path) -> str:
    from components.lifelong.ledger import folder_hash

    return f"base-{folder_hash(Path(folder))[:8]}"


def migrate(
    ws: Workspace, base_folder: Path, label: str | None = None, *, launcher, log: Log = print, wait: bool = True
) -> MigrationResult:
    """Migrate the chain to `base_folder` (see the module's docstring). `launcher(view)`: how to train on
    a workspace view (`chains.onboard.launcher`). Bad input raises MigrationRefused before any commit."""
    label = label or default_label(base_folder)
    new = side_chain(ws, label)
    with writer_lock(ws.root, f"migrate {label}: checks", wait=wait, log=log):
        info = _prepare(ws, new, Path(base_folder), log)
    result, seconds = MigrationResult(label, []), []
    while True:
        with writer_lock(ws.root, f"migrate {label}: next concept", wait=wait, log=log):
            catch_up(ws, log=log)  # an onboarding killed meanwhile is finished first: it may add a concept
            _recover(new, log)
            moves, done = plan_moves(ws, new)
            if not moves:
                return _finish(ws, new, result, log)
            move, position, total = moves[0], len(done) + 1, len(done) + len(moves)
            check_datasets(ws, [move], log)
            check_shots([move], info["resolution"])
            eta = f"ETA {_clock(sum(seconds) / len(seconds) * len(moves))}" if seconds else "ETA after this one"
            t = move.training
            log(
                f"migrating concept {position}/{total}: {move.name} ({len(moves) - 1} left after it, {eta}); "
                f"method {t.method}, seed {t.seed}, {t.steps} steps"
            )
            start = time.time()
            _learn(ws, new, move, position, launcher, log)
            seconds.append(time.time() - start)
            result.trained.append(move.name)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _prepare(ws: Workspace, new: SideChain, folder: Path, log: Log) -> dict:
    """Under the lock: every check, then the base versioned in its own commit (done once per label)."""
    from components.lifelong.ledger import folder_hash
    from components.versioning import ensure_dvc_repo, version_paths

    info = check_new_base(ws, folder)
    if new.label in committed_labels(ws):
        if not new.base_dir.is_dir():
            _restore(ws, [new.base_rel], log)
        if folder_hash(new.base_dir) != info["hash"]:
            raise MigrationRefused(f"--name {new.label}: that label is another base's ({new.base_rel}); choose another")
    for line in erased_names(ws):
        log(f"not migrated, erased: {line}; its dataset is gone and it is never brought back")
    moves, done = plan_moves(ws, new)
    check_datasets(ws, moves, log)
    check_shots(moves, info["resolution"])
    if info["prediction_type"] != info["old_prediction_type"]:
        log(
            f"the new base predicts {info['prediction_type']}, the old one {info['old_prediction_type']}: "
            "every concept's training target follows the new base"
        )
    catch_up(ws, log=log)
    if new.label not in committed_labels(ws):
        import shutil

        shutil.rmtree(new.base_dir, ignore_errors=True)
        shutil.copytree(folder, new.base_dir)
        ensure_dvc_repo(ws.root)
        try:
            rec = version_paths(
                ws.root, [new.base_rel], f"migrate {new.label}: base {folder.name} ({info['hash'][:12]})"
            )
        except BaseException:
            shutil.rmtree(new.base_dir, ignore_errors=True)
            raise
        log(f"base {folder} versioned as {new.base_rel} (DVC md5 {rec[0].md5}, commit {rec[0].commit[:10]})")
    log(
        f"migrating to {new.label}: {len(done)} of {len(done) + len(moves)} concepts already on it; "
        f"{info['resolution']} px, {info['prediction_type']}"
    )
    return info


def _restore(ws: Workspace, rels: list[str], log: Log) -> None:
    from components.versioning import restore

    log(f"restoring from DVC: {', '.join(rels)}")
    restore(ws.root, rels)


def _recover(new: SideChain, log: Log) -> None:
    """The side chain made whole after a killed migration, as `workspace.recovery` does for the old one."""
    from components.workspace.recovery import discard_unfinished, restore_committed

    if not new.base_dir.is_dir():
        _restore(new, [new.base_rel], log)
    discard_unfinished(new, log)
    restore_committed(new, log)


def _learn(ws: Workspace, new: SideChain, move: Move, position: int, launcher, log: Log) -> None:
    """One concept on the side chain, as an onboarding learns it (train -> evaluate -> one commit); a
    failure before the commit leaves nothing behind."""
    from components.lifelong import Ledger, relativize_ledger
    from components.lifelong.ledger import LEDGER_FILE
    from components.onboarding import steps
    from components.onboarding.scoring import evaluate_checkpoint
    from components.versioning import version_paths
    from components.versioning.store import committed_record
    from components.workspace.recovery import discard_uncommitted

    view = dataclasses.replace(new, params=dataclasses.replace(new.params, training=move.training))
    previous, out = view.latest_checkpoint(), view.next_checkpoint(move.name)
    data_md5 = committed_record(ws.root, ws.rel(move.dataset)).md5
    attempt = f"{new.label}-" + steps.attempt_name(out, previous, data_md5, move.training.method)
    die_point = f"during-migrate-training-{position}"
    try:
        result = steps.train(
            view, move.dataset, out, previous, launcher(view), lambda _: die_here_if_asked(die_point), attempt
        )
        learned = Ledger.read(out / LEDGER_FILE).entries[-1]
        if (learned.name, learned.token) != (move.name, move.token):
            raise RuntimeError(
                f"{out.name}: learned {learned.name!r} {learned.token}, expected {move.name!r} {move.token}"
            )
        log(f"trained {new.label}/{out.name} in {result.seconds:.1f} s")
        figures = ws.state_dir / "figures" / new.label / out.name
        evaluation = evaluate_checkpoint(view, out, previous, figures, record=True, show_progress=True)
        log("forgetting: " + ", ".join(f"{k} {v:.3f}" for k, v in evaluation.current.items()))
        relativize_ledger(out, ws.root)
        (rec,) = version_paths(ws.root, [ws.rel(out)], f"migrate {new.label}: {out.name} ({move.class_word})")
    except BaseException:
        log(f"migrating {move.name} failed before its commit: discarding the attempt")
        discard_uncommitted(view, [out])
        raise
    log(f"committed {rec.commit[:10]} ({new.label}/{out.name}, checkpoint {rec.md5})")
    steps.drop_training_state(view, attempt)
    die_here_if_asked("after-migrate-commit")


def _finish(ws: Workspace, new: SideChain, result: MigrationResult, log: Log) -> MigrationResult:
    """Under the lock, once every concept is on the side chain: register its newest checkpoint (once),
    tag the gate's verdict (production stays), and the scorecard."""
    from components.chains.migrate_publish import publish

    result.chain = new.learned_names()
    result.erased = [line.split(" ", 1)[0] for line in erased_names(ws)]
    return publish(ws, new, result, log)


def chain_tags(new: SideChain) -> dict[str, str]:
    return {CHAIN_TAG: new.label, "lfsd.base_path": new.base_rel}


def read_history(checkpoint: Path) -> dict:
    from components.onboarding.scoring import FORGETTING_FILE

    return json.loads((Path(checkpoint) / FORGETTING_FILE).read_text())
