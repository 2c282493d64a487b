"""THE removal chain: take one concept out of the lifelong model on request and purge its photos.

    [writer lock] catch up -> plan (refuse: unknown, erased before, the only concept)
        -> write the chain without it -> relearn the concepts after it (`retrain_later`, relearn.py)
        -> evaluate -> gate decided BEFORE anything is committed
        -> commit (removal checkpoint + record in, dataset + task checkpoint out) -> register -> gate -> purge

If the chain without the concept fails the gate while `production` still holds the concept, nothing
is committed and the request is refused with the gate's reasons (`force=True` erases anyway and
moves `production` to the version without it: an erasure request can outrank a quality bound, but
only when someone says so). A failure before the commit leaves the workspace as it was; after it,
the next write of any kind (`catch_up`) finishes registration and purge.
"""

from __future__ import annotations

from pathlib import Path

from components.chains.catch_up import catch_up
from components.chains.onboard import launcher as chain_launcher
from components.erasure import removal_steps as fs
from components.erasure.record import ErasureRecord, ErasureRefused, plan
from components.erasure.relearn import relearn_later
from components.onboarding.steps import drop_training_state
from components.publishing.gate import decide
from components.ray_train.warm import warm_training
from components.stepping import Log, OnboardResult, StepRunner, Timed, run_plain
from components.workspace.faults import die_here_if_asked
from components.workspace.layout import Workspace
from components.workspace.lock import writer_lock
from components.workspace.recovery import discard_uncommitted


def forget(
    ws: Workspace,
    name: str,
    reason: str,
    *,
    run_step: StepRunner = run_plain,
    log: Log = print,
    wait: bool = True,
    force: bool = False,
    retrain_later: bool | None = None,
    launcher=None,
) -> OnboardResult:
    """Erase concept `name` from the workspace's chain, model registry and stores (see the module).
    `retrain_later` (default: params.yaml `forget.retrain_later`): relearn the concepts after it with
    `launcher` (default: the pipeline's, `chain.launcher`); False: drop its task and keep the rest as trained."""
    with writer_lock(ws.root, f"forget {name}", wait=wait, log=log):
        finished = catch_up(ws, run_step=run_step, log=log)
        done = next((r for r in finished if r.status == "forgotten" and r.concept == name), None)
        if done is not None:  # this very request was committed by a killed run and finished just now
            return done
        step = Timed(run_step)
        previous = ws.latest_checkpoint()
        out = ws.next_checkpoint(f"forget-{name}")
        retrain = ws.params.forget.retrain_later if retrain_later is None else retrain_later
        record = step("plan", plan, ws, name, reason, out, retrain)
        log(f"forgetting {name} (task {record.task}): {record.reason}")
        attempts: list[str] = []
        try:
            step("remove", fs.write_removal, ws, record, previous, out)
            if record.retrained:
                log(f"relearning {', '.join(record.retrained)} without {name}")
                with warm_training(ws.params.ray, ws.state_dir, enabled=ws.params.ray.keep_workers):
                    attempts = step(
                        "relearn", relearn_later, ws, record, previous, out, launcher or chain_launcher(ws), log
                    )
            evaluation = step("evaluate", fs.evaluate_removal, ws, record, previous, out)
            log(
                "without it: "
                + ", ".join(f"{k} {v:.3f}" for k, v in evaluation.current.items())
                + "; erased concept's fidelity "
                + ", ".join(f"{k} {v:.3f}" for k, v in record.measured.items())
            )
            _refuse_unless_servable(ws, record, evaluation, force)
            ckpt_rec = step("commit", fs.commit_removal, ws, record, out)
        except BaseException:
            log(f"forgetting {name} failed before its commit: nothing changed")
            discard_uncommitted(ws, [out])
            raise
        log(
            f"committed {ckpt_rec.commit[:10]}: {record.dataset} and "
            f"{', '.join(record.dropped_checkpoints or [record.checkpoint])} out of the chain"
        )
        for attempt in attempts:
            drop_training_state(ws, attempt)
        die_here_if_asked("after-forget-commit")
        return fs.finish_removal(ws, out, step, log, evaluation)


def _production_holds(ws: Workspace, name: str) -> str | None:
    """The production version if it holds concept `name`."""
    from components.registry import PRODUCTION, get_alias_version
    from components.workspace.mlflow_store import client

    mlflow_client = client(ws)
    model = ws.params.pipeline.model_name
    version = get_alias_version(model, PRODUCTION)
    if version is None:
        return None
    tags = mlflow_client.get_model_version(model, version).tags or {}
    return version if name in str(tags.get("lfsd.ledger", "")).split(",") else None


def _refuse_unless_servable(ws: Workspace, record: ErasureRecord, evaluation, force: bool) -> None:
    decision = decide(evaluation.current, ws.params.gate)
    held_by = None if decision.passed else _production_holds(ws, record.concept)
    if held_by is None:
        return
    if not force:
        raise ErasureRefused(
            f"the chain without {record.concept!r} fails the promotion gate ({'; '.join(decision.reasons)}) while "
            f"production (version {held_by}) holds {record.concept!r}: nothing was changed. Rerun with --force to "
            f"erase it anyway and serve the version without it."
        )
    record.forced = True
    (Path(ws.root) / record.removal_checkpoint / fs.ERASURE_FILE).write_bytes(record.to_json())
