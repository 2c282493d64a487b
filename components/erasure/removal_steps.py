"""The steps of removing a concept (`components/chains/forget.py` orders them), each a plain function of the workspace.

The removal is a lifelong step of its own: a checkpoint `checkpoints/NN-forget-<name>/` holding only
the ledger without the concept (every other task's adapter and token as they were, the removed
task's simply no longer applied) and the erasure record. It is evaluated like any step, committed
in ONE git commit that also drops the concept's dataset and task checkpoint from the chain, then
registered, gated and purged. Purging is idempotent, so a killed removal is finished by the next
write (`catch_up`), never redone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from components.erasure.record import ERASURE_FILE, ErasureRecord
from components.onboarding.scoring import FORGETTING_FILE, StepEvaluation, evaluate_checkpoint, history_without
from components.publishing.gate import decide
from components.stepping import Log, OnboardResult, Timed
from components.workspace.faults import die_here_if_asked
from components.workspace.layout import Workspace
from components.workspace.mlflow_store import client, open_tracking

PURGED_TAG = "lfsd.purged"  # on the removal's model version once every copy is gone


def is_removal(checkpoint: Path) -> bool:
    return (Path(checkpoint) / ERASURE_FILE).is_file()


def write_removal(ws: Workspace, record: ErasureRecord, previous: Path, out: Path) -> Path:
    """The removal's checkpoint: the previous chain's ledger without the concept, and the record."""
    from components.lifelong import LEDGER_FILE, Ledger

    out.mkdir(parents=True)
    Ledger.read(previous / LEDGER_FILE).without(record.concept).save(out / LEDGER_FILE)
    (out / ERASURE_FILE).write_bytes(record.to_json())
    return out


def evaluate_removal(ws: Workspace, record: ErasureRecord, previous: Path, out: Path) -> StepEvaluation:
    """The forgetting protocol on the chain without the concept (the history without it, the removal's
    row last), and the erased concept itself drawn with its old token, without references, by the
    chain before, the chain after and the base: whether anything of it is left (written to the record)."""
    records = json.loads((previous / FORGETTING_FILE).read_text())["steps"]
    evaluation = evaluate_checkpoint(
        ws, out, previous, ws.state_dir / "figures" / out.name, history=history_without(records, record.concept)
    )
    record.measured = score_erased(ws, record, previous, out)
    (out / ERASURE_FILE).write_bytes(record.to_json())
    return evaluation


def score_erased(ws: Workspace, record: ErasureRecord, previous: Path, out: Path) -> dict:
    """Fidelity of the erased concept (prompted by its old token, no ICGen context: that would hand the
    photos back to the model) under theta before the removal, after it, and theta_0."""
    import torch

    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel, read_ledger

    torch.set_num_threads(ws.params.runtime.threads)
    entry = next(e for e in read_ledger(previous).entries if e.name == record.concept)
    evaluator = ForgettingEvaluator(*load_evaluator(ws.evaluator_dir), ws.params.forgetting)
    base = LifelongModel.from_base(ws.base_dir, read_ledger(previous).method)
    out_scores = {}
    for label, model in (
        ("before", LifelongModel.from_checkpoint(previous, ws.base_dir, fold=True)),
        ("after", LifelongModel.from_checkpoint(out, ws.base_dir, fold=True)),
        ("base", base),
    ):
        out_scores[f"fidelity_{label}"] = round(
            evaluator.score_concept(model.eval(), entry, icgen=False)[0].fidelity, 6
        )
    return out_scores


def commit_removal(ws: Workspace, record: ErasureRecord, out: Path):
    """ONE commit: the removal's checkpoint (DVC), the record and the metrics files (git), and the
    concept's dataset and task checkpoint out of the chain (their .dvc files; the folders are deleted)."""
    from components.publishing.dvc_metrics import metrics_files
    from components.versioning import version_paths

    history = json.loads((out / FORGETTING_FILE).read_text())
    (rec,) = version_paths(
        ws.root,
        [ws.rel(out)],
        f"forget {record.concept}: {record.reason}",
        git_files={**metrics_files(history), record.git_path(): record.to_json()},
        drop=[record.dataset, *(record.dropped_checkpoints or [record.checkpoint])],
    )
    return rec


def purge(ws: Workspace, record: ErasureRecord, log) -> dict:
    """Every remaining copy of the concept's photos, of what was learned from them and of samples drawn
    of it: the inbox's copies, the state folder's sample grids, the DVC cache and remotes, MLflow.
    Idempotent. Returns what was deleted where."""
    from components.registry.erased_versions import erase_from_registry
    from components.versioning.git import git, read_blob
    from components.versioning.purge import drop_objects

    for rel in record.inbox_copies:
        shutil.rmtree(ws.root / rel, ignore_errors=True)
    for grid in (ws.state_dir / "figures").glob("*/samples.png"):  # regenerable; the removal's own holds no trace
        if grid.parent.name != Path(record.removal_checkpoint).name:
            grid.unlink()
    commit = git(["log", "-1", "--format=%H", "--", record.git_path()], ws.root)
    pointers = [read_blob(ws.root, f"{commit}^:{p}.dvc") for p in (record.dataset, *record.purged_checkpoints())]
    dvc = drop_objects(ws.root, [p for p in pointers if p])
    exp = open_tracking(ws)
    note = f"{record.concept} erased {record.erased_at} by {record.requested_by}: {record.reason} ({record.git_path()})"
    mlflow_touched = erase_from_registry(
        client(ws), ws.params.pipeline.model_name, exp, record.concept, record.task, note
    )
    log(
        f"purged {record.concept}: inbox copies {len(record.inbox_copies)}, DVC objects "
        + ", ".join(f"{k} {v}" for k, v in dvc.items())
        + f", MLflow model versions {len(mlflow_touched['model_versions'])} and runs {len(mlflow_touched['runs'])}"
    )
    return {"dvc": dvc, **mlflow_touched}


def finish_removal(ws: Workspace, checkpoint: Path, step: Timed, log: Log, evaluation=None) -> OnboardResult:
    """After the commit: register the removal's version, gate it (forced if the record says so), purge
    every copy, mark the version purged. Idempotent: `catch_up` calls it for a killed removal (then
    re-scoring the committed chain, which is deterministic)."""
    import json

    from components.publishing.concept_run import lineage_tags, log_and_register_removal
    from components.publishing.gate import apply_gate
    from components.registry import promote
    from components.versioning.store import committed_record

    record = ErasureRecord.read(checkpoint / ERASURE_FILE)
    if evaluation is None:
        history = json.loads((checkpoint / FORGETTING_FILE).read_text())["steps"][:-1]
        evaluation = step(
            "evaluate",
            evaluate_checkpoint,
            ws,
            checkpoint,
            None,
            ws.state_dir / "figures" / checkpoint.name,
            record=False,
            history=history,
        )
    ckpt_rec = committed_record(ws.root, ws.rel(checkpoint))
    run_id, version = step(
        "register",
        log_and_register_removal,
        ws,
        checkpoint=checkpoint,
        record=record,
        evaluation=evaluation,
        lineage=lineage_tags(ws, ckpt_rec),
    )
    die_here_if_asked("after-forget-register")
    decision = decide(evaluation.current, ws.params.gate)
    production = step("gate", apply_gate, ws, version, decision)
    if not decision.passed and record.forced:
        production = version
        promote(
            ws.params.pipeline.model_name,
            version,
            reason=f"erasure of {record.concept} forced past the gate ({decision.summary()})",
        )
    touched = step("purge", purge, ws, record, log)
    client(ws).set_model_version_tag(ws.params.pipeline.model_name, version, PURGED_TAG, json.dumps(touched["dvc"]))
    log(f"{record.concept}: erased; version {version} without it, gate {decision.summary()}; production = {production}")
    return OnboardResult(
        record.concept,
        "forgotten",
        ws.rel(checkpoint),
        record.dataset,
        version,
        run_id,
        decision.summary(),
        production,
        evaluation.current | {f"erased.{k}": v for k, v in record.measured.items()},
        step.times,
    )
