"""THE onboarding chain: the one place that orders the steps, times them, holds the writer lock and
undoes a failed attempt.

    [writer lock] catch up (finish or discard what a killed writer left) -> already onboarded?
        -> validate -> nearness (refuse a learned concept again, warn about near ones)
        -> version dataset -> train (+ keep the shot embeddings) -> evaluate forgetting
        -> version checkpoint (the commit) -> register -> gate

How each step is run is the caller's: `run_plain` calls it directly (tests, the overhead benchmark's
bare path); the Prefect flow passes a runner that runs each step as a Prefect task. How training is
launched is the caller's too (`components.training.launch.in_process` or `components.ray_train.job.on_ray`).
"""

from __future__ import annotations

from pathlib import Path

from components.chains.catch_up import catch_up
from components.onboarding import steps
from components.onboarding.dataset import already_onboarded
from components.onboarding.finish import register_and_gate
from components.publishing.concept_run import icgen_tag
from components.stepping import Log, OnboardResult, StepRunner, Timed, run_plain
from components.workspace.faults import die_here_if_asked
from components.workspace.layout import Workspace
from components.workspace.lock import writer_lock

__all__ = ["OnboardResult", "launcher", "onboard", "run_plain"]


def launcher(ws: Workspace):
    """How the pipeline trains: a Ray Train job per task (`ray.enabled`, the default), the one worker group
    of an open `components.ray_train.warm.warm_training` scope (a sequence), or without Ray the same loop in
    the onboarding process (runtime.threads threads)."""
    from components.ray_train.job import on_ray
    from components.ray_train.warm import active
    from components.training.launch import in_process

    if ws.params.ray.enabled and active() is not None:
        return active()
    return on_ray(ws.params.ray, ws.state_dir) if ws.params.ray.enabled else in_process(ws.params.runtime.threads)


def onboard(
    ws: Workspace,
    folder: Path,
    *,
    launcher,
    run_step: StepRunner = run_plain,
    parent_run_id: str | None = None,
    log: Log = print,
    wait: bool = True,
) -> OnboardResult:
    """Teach one concept folder to the workspace's lifelong model, holding the writer lock throughout
    (`wait=False`: raise WorkspaceBusy instead of waiting). Bad input fails in `validate` and changes
    nothing; the same folder twice is a no-op; a failure before the commit leaves the workspace as it
    was; a failed gate still registers the version (production stays)."""
    folder = Path(folder)
    with writer_lock(ws.root, f"onboard {folder}", wait=wait, log=log):
        finished = catch_up(ws, run_step=run_step, parent_run_id=parent_run_id, log=log)
        result = _onboard_locked(ws, folder, launcher, Timed(run_step), parent_run_id, log)
        # This very folder was committed by a killed run and registered just now: say so, not "nothing to do".
        return next(
            (r for r in finished if result.status == "already-onboarded" and r.concept == Path(result.dataset).name),
            result,
        )


def _onboard_locked(
    ws: Workspace, folder: Path, launcher, step: Timed, parent_run_id: str | None, log: Log
) -> OnboardResult:
    same = already_onboarded(ws, folder)
    if same is not None:
        log(f"{folder}: already onboarded as {same} (same name, class word and images); nothing to do")
        return OnboardResult(folder.name, "already-onboarded", dataset=same)
    sub = step("validate", steps.validate, ws, folder)
    near = step("nearness", steps.check_nearness, ws, sub)
    previous, out = ws.latest_checkpoint(), ws.next_checkpoint(sub.name)
    log(f"onboarding {sub.name} ({sub.class_word}, {len(sub.source_sha256)} shots) as {out.name}")
    warning = steps.nearness_warning(ws, near)
    if warning:
        log(warning)
    reported: list[dict] = []
    try:
        dataset, md5 = step("version_dataset", steps.version_dataset, ws, sub)
        log(f"dataset {ws.rel(dataset)} pushed to the DVC remote (md5 {md5})")
        attempt = steps.attempt_name(out, previous, md5, ws.params.training.method)
        result = step("train", steps.train, ws, dataset, out, previous, launcher, reported.append, attempt)
        resumed = (
            f", resumed after step {result.resumed_from_step} of a killed attempt" if result.resumed_from_step else ""
        )
        log(f"trained {out.name} in {result.seconds:.1f} s ({result.step_seconds * 1000:.0f} ms/step{resumed})")
        steps.keep_nearness(ws, out, near)  # before the evaluation: it scores the near concepts in full
        icgen = icgen_tag(out).get("lfsd.icgen", "on")
        if icgen.startswith("off"):  # never a silent downgrade: said here, and tagged on the run and the version
            log(f"ICGen {icgen}: {out.name} trained without it (tag lfsd.icgen)")
        evaluation = step("evaluate", steps.evaluate_forgetting, ws, out, previous)
        log("forgetting: " + ", ".join(f"{k} {v:.3f}" for k, v in evaluation.current.items()))
        data_rec, ckpt_rec = step(
            "version_checkpoint",
            steps.version_checkpoint,
            ws,
            dataset,
            out,
            f"onboard {out.name}: {sub.class_word} ({len(sub.source_sha256)} shots)",
        )
        log(f"committed {ckpt_rec.commit[:10]} (dataset {data_rec.md5}, checkpoint {ckpt_rec.md5})")
    except BaseException:
        log(f"onboarding {sub.name} failed before its commit: discarding the attempt")
        steps.discard_attempt(ws, sub, out)
        raise
    die_here_if_asked("after-commit")
    steps.drop_training_state(ws, attempt)
    run_id, version, decision, production = register_and_gate(
        ws,
        step,
        out,
        sub.name,
        sub.class_word,
        reported,
        result.seconds,
        evaluation,
        data_rec,
        ckpt_rec,
        parent_run_id,
        log,
    )
    return OnboardResult(
        sub.name,
        "onboarded",
        ws.rel(out),
        data_rec.path,
        version,
        run_id,
        decision.summary(),
        production,
        evaluation.current | {"final_fidelity": evaluation.metrics["final_fidelity"]},
        step.times | {"train_in_worker": round(result.seconds, 2)},
    )
