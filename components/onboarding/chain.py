"""THE onboarding chain: the one place that orders the steps, times them, holds the writer lock and
undoes a failed attempt.

    [writer lock] recover (finish or discard what a killed writer left) -> already onboarded?
        -> validate -> version dataset -> train -> evaluate forgetting
        -> version checkpoint (the commit) -> register -> gate

How each step is run is the caller's: `run_plain` calls it directly (tests, the overhead benchmark's
bare path); the Prefect flow passes a runner that runs each step as a Prefect task. How training is
launched is the caller's too (`components.training.launch.in_process` or `ray_job.on_ray`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.onboarding import steps
from components.onboarding.dataset import already_onboarded
from components.onboarding.faults import die_here_if_asked
from components.onboarding.lock import writer_lock
from components.onboarding.recovery import recover
from components.onboarding.workspace import Workspace

StepRunner = Callable[..., Any]  # run_step(name, fn, *args, **kwargs) -> fn(*args, **kwargs)
Log = Callable[[str], None]


def run_plain(name: str, fn, *args, **kwargs):
    return fn(*args, **kwargs)


@dataclass
class OnboardResult:
    concept: str
    status: str  # "onboarded" | "already-onboarded"
    checkpoint: str = ""
    dataset: str = ""
    version: str = ""
    run_id: str = ""
    gate: str = ""
    production: str | None = None
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # per step wall time, as the chain saw it


class _Timed:
    """Runs steps through the caller's runner and records the wall time each took, as the chain saw it."""

    def __init__(self, run_step: StepRunner):
        self.run_step, self.times = run_step, {}

    def __call__(self, name: str, fn, *args, **kwargs):
        t0 = time.time()
        try:
            return self.run_step(name, fn, *args, **kwargs)
        finally:
            self.times[name] = round(time.time() - t0, 2)


def onboard(ws: Workspace, folder: Path, *, launcher, run_step: StepRunner = run_plain,
            parent_run_id: str | None = None, log: Log = print, wait: bool = True) -> OnboardResult:
    """Teach one concept folder to the workspace's lifelong model, holding the writer lock throughout
    (`wait=False`: raise WorkspaceBusy instead of waiting). Bad input fails in `validate` and changes
    nothing; the same folder twice is a no-op; a failure before the commit leaves the workspace as it
    was; a failed gate still registers the version (production stays)."""
    folder = Path(folder)
    with writer_lock(ws.root, f"onboard {folder}", wait=wait, log=log):
        finished = [register_committed(ws, ckpt, run_step=run_step, parent_run_id=parent_run_id, log=log)
                    for ckpt in recover(ws, log)]
        result = _onboard_locked(ws, folder, launcher, _Timed(run_step), parent_run_id, log)
        # This very folder was committed by a killed run and registered just now: say so, not "nothing to do".
        return next((r for r in finished if result.status == "already-onboarded" and r.concept == Path(result.dataset).name),
                    result)


def _onboard_locked(ws: Workspace, folder: Path, launcher, step: _Timed, parent_run_id: str | None,
                    log: Log) -> OnboardResult:
    same = already_onboarded(ws, folder)
    if same is not None:
        log(f"{folder}: already onboarded as {same} (same name, class word and images); nothing to do")
        return OnboardResult(folder.name, "already-onboarded", dataset=same)
    sub = step("validate", steps.validate, ws, folder)
    previous, out = ws.latest_checkpoint(), ws.next_checkpoint(sub.name)
    log(f"onboarding {sub.name} ({sub.class_word}, {len(sub.source_sha256)} shots) as {out.name}")
    reported: list[dict] = []
    try:
        dataset, md5 = step("version_dataset", steps.version_dataset, ws, sub)
        log(f"dataset {ws.rel(dataset)} pushed to the DVC remote (md5 {md5})")
        attempt = steps.attempt_name(out, previous, md5, ws.params.training.method)
        result = step("train", steps.train, ws, dataset, out, previous, launcher, reported.append, attempt)
        resumed = f", resumed after step {result.resumed_from_step} of a killed attempt" if result.resumed_from_step else ""
        log(f"trained {out.name} in {result.seconds:.1f} s ({result.step_seconds * 1000:.0f} ms/step{resumed})")
        evaluation = step("evaluate", steps.evaluate_forgetting, ws, out, previous)
        log("forgetting: " + ", ".join(f"{k} {v:.3f}" for k, v in evaluation.current.items()))
        data_rec, ckpt_rec = step("version_checkpoint", steps.version_checkpoint, ws, dataset, out,
                                  f"onboard {out.name}: {sub.class_word} ({len(sub.source_sha256)} shots)")
        log(f"committed {ckpt_rec.commit[:10]} (dataset {data_rec.md5}, checkpoint {ckpt_rec.md5})")
    except BaseException:
        log(f"onboarding {sub.name} failed before its commit: discarding the attempt")
        steps.discard_attempt(ws, sub, out)
        raise
    die_here_if_asked("after-commit")
    steps.drop_training_state(ws, attempt)
    run_id, version, decision, production = _register_and_gate(
        ws, step, out, sub.name, sub.class_word, reported, result.seconds, evaluation, data_rec, ckpt_rec,
        parent_run_id, log)
    return OnboardResult(sub.name, "onboarded", ws.rel(out), data_rec.path, version, run_id, decision.summary(),
                         production, evaluation.current | {"final_fidelity": evaluation.metrics["final_fidelity"]},
                         step.times | {"train_in_worker": round(result.seconds, 2)})


def _register_and_gate(ws, step, checkpoint, concept, class_word, losses, train_seconds, evaluation, data_rec,
                       ckpt_rec, parent_run_id, log):
    run_id, version = step("register", steps.register, ws, checkpoint=checkpoint, concept=concept,
                           class_word=class_word, losses=losses, train_seconds=train_seconds, evaluation=evaluation,
                           lineage=steps.lineage_tags(ws, data_rec, ckpt_rec), parent_run_id=parent_run_id)
    decision, production = step("gate", steps.gate, ws, version, evaluation)
    log(f"{concept}: version {version}, gate {decision.summary()}; production is version {production}")
    return run_id, version, decision, production


def register_committed(ws: Workspace, checkpoint: Path, *, run_step: StepRunner = run_plain,
                       parent_run_id: str | None = None, log: Log = print) -> OnboardResult:
    """Finish a concept whose checkpoint was committed but never registered (its writer was killed in
    between): re-score it (deterministic: the numbers it was committed with), register, gate. Never
    retrains. Call under the writer lock."""
    from components.lifelong import read_ledger
    from components.versioning.store import committed_record

    chain = ws.checkpoints()
    i = chain.index(checkpoint)
    entry = read_ledger(checkpoint).entries[-1]
    log(f"{checkpoint.name} was committed but not registered (its writer was killed): registering it now")
    step = _Timed(run_step)
    evaluation = step("evaluate", steps.evaluate_forgetting, ws, checkpoint, chain[i - 1] if i else None, False)
    data_rec = committed_record(ws.root, ws.rel(ws.data_dir / entry.name))
    ckpt_rec = committed_record(ws.root, ws.rel(checkpoint))
    trained = steps.training_record(checkpoint)
    run_id, version, decision, production = _register_and_gate(
        ws, step, checkpoint, entry.name, entry.class_word, [trained["final"]], trained["seconds"], evaluation,
        data_rec, ckpt_rec, parent_run_id, log)
    return OnboardResult(entry.name, "registered-after-crash", ws.rel(checkpoint), data_rec.path, version, run_id,
                         decision.summary(), production, evaluation.current, step.times)
