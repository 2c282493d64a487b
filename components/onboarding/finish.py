"""Finishing an onboarding whose writer was killed between its commit and its registration: the
committed checkpoint is re-scored (deterministic: the numbers it was committed with), registered and
gated, never retrained. Also the register-then-gate pair every onboarding ends with."""

from __future__ import annotations

from pathlib import Path

from components.onboarding import steps
from components.publishing.concept_run import lineage_tags
from components.stepping import Log, OnboardResult, StepRunner, Timed, run_plain
from components.workspace.layout import Workspace


def register_and_gate(
    ws, step, checkpoint, concept, class_word, losses, train_seconds, evaluation, data_rec, ckpt_rec, parent_run_id, log
):
    run_id, version = step(
        "register",
        steps.register,
        ws,
        checkpoint=checkpoint,
        concept=concept,
        class_word=class_word,
        losses=losses,
        train_seconds=train_seconds,
        evaluation=evaluation,
        lineage=lineage_tags(ws, ckpt_rec, data_rec),
        parent_run_id=parent_run_id,
        stage_seconds=dict(step.times),
    )
    decision, production = step("gate", steps.gate, ws, version, evaluation)
    held = (
        " (not moved: it serves another chain's version; `lfsd promote " + version + "` to move it)"
        if decision.passed and production != version
        else ""
    )
    log(f"{concept}: version {version}, gate {decision.summary()}; production is version {production}{held}")
    return run_id, version, decision, production


def register_committed(
    ws: Workspace,
    checkpoint: Path,
    *,
    run_step: StepRunner = run_plain,
    parent_run_id: str | None = None,
    log: Log = print,
) -> OnboardResult:
    """Finish a concept whose checkpoint was committed but never registered (its writer was killed in
    between): re-score it (deterministic: the numbers it was committed with), register, gate. Never
    retrains. Call under the writer lock."""
    from components.lifelong import read_ledger
    from components.versioning.store import committed_record

    chain = ws.checkpoints()
    i = chain.index(checkpoint)
    entry = read_ledger(checkpoint).entries[-1]
    log(f"{checkpoint.name} was committed but not registered (its writer was killed): registering it now")
    step = Timed(run_step)
    evaluation = step("evaluate", steps.evaluate_forgetting, ws, checkpoint, chain[i - 1] if i else None, False)
    data_rec = committed_record(ws.root, ws.rel(ws.data_dir / entry.name))
    ckpt_rec = committed_record(ws.root, ws.rel(checkpoint))
    trained = steps.training_record(checkpoint)
    run_id, version, decision, production = register_and_gate(
        ws,
        step,
        checkpoint,
        entry.name,
        entry.class_word,
        [trained["final"]],
        trained["seconds"],
        evaluation,
        data_rec,
        ckpt_rec,
        parent_run_id,
        log,
    )
    return OnboardResult(
        entry.name,
        "registered-after-crash",
        ws.rel(checkpoint),
        data_rec.path,
        version,
        run_id,
        decision.summary(),
        production,
        evaluation.current,
        step.times,
    )
