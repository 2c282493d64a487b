"""`onboard_concept`: validate -> version dataset -> train (Ray Train) -> evaluate forgetting ->
version checkpoint -> register in MLflow -> gate. Each task is one step of components.onboarding."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.onboarding import steps
from components.onboarding.dataset import already_onboarded
from components.onboarding.workspace import Workspace, load_workspace


@task(name="validate concept", cache_policy=NO_CACHE)
def validate(ws: Workspace, folder: Path):
    return steps.check_submission(ws, folder)


@task(name="version dataset (DVC)", cache_policy=NO_CACHE)
def version_dataset(ws: Workspace, sub):
    folder, md5 = steps.version_dataset(ws, sub)
    get_run_logger().info("dataset %s pushed to the DVC remote (md5 %s)", ws.rel(folder), md5)
    return folder


@task(name="train (Ray Train)", cache_policy=NO_CACHE)
def train(ws: Workspace, dataset: Path, out: Path):
    from components.training.ray_job import ensure_ray, train_task_on_ray

    logger = get_run_logger()
    ensure_ray(ws.params.ray, ws.state_dir)
    previous = ws.latest_checkpoint()
    reported: list[dict] = []

    def on_report(row: dict) -> None:
        reported.append(row)
        logger.info("step %s: %s", row.get("step"), ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "step"))

    result = train_task_on_ray(base_dir=ws.base_dir, previous_checkpoint=previous, concept_dir=dataset,
                               references=str(dataset.resolve()), out=out, method=ws.params.training.method,
                               cfg=ws.params.training, ray_cfg=ws.params.ray, state_dir=ws.state_dir,
                               on_report=on_report)
    logger.info("trained %s in %.1f s (%.0f ms/step)", out.name, result.seconds, result.step_seconds * 1000)
    return result, reported


@task(name="evaluate forgetting", cache_policy=NO_CACHE)
def evaluate(ws: Workspace, checkpoint: Path, previous: Path | None):
    evaluation = steps.evaluate(ws, checkpoint, previous)
    get_run_logger().info("forgetting: %s", ", ".join(f"{k} {v:.3f}" for k, v in evaluation.current.items()))
    return evaluation


@task(name="version checkpoint (DVC + git)", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def version_checkpoint(ws: Workspace, dataset: Path, checkpoint: Path, message: str):
    data_rec, ckpt_rec = steps.version_checkpoint(ws, dataset, checkpoint, message)
    get_run_logger().info("committed %s (dataset %s, checkpoint %s)", ckpt_rec.commit[:10], data_rec.md5, ckpt_rec.md5)
    return data_rec, ckpt_rec


@task(name="register in MLflow", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register(ws: Workspace, **kwargs):
    run_id, version = steps.log_and_register(ws, **kwargs)
    get_run_logger().info("MLflow run %s, %s version %s (alias candidate)", run_id, ws.params.pipeline.model_name, version)
    return run_id, version


@task(name="promotion gate", cache_policy=NO_CACHE)
def gate(ws: Workspace, version: str, evaluation):
    decision, production = steps.gate(ws, version, evaluation)
    log = get_run_logger()
    (log.info if decision.passed else log.warning)("gate %s; production is version %s", decision.summary(), production)
    return decision, production


@flow(name="onboard-concept", log_prints=True)
def onboard_concept(concept_dir: str, workspace: str | None = None, parent_run_id: str | None = None) -> steps.OnboardResult:
    """Teach one concept folder to the lifelong model. Bad input fails in `validate` and changes
    nothing; the same folder twice is a no-op; a failed gate ends Completed with the reason recorded."""
    logger = get_run_logger()
    ws = load_workspace(workspace)
    folder = Path(concept_dir)
    same = already_onboarded(ws, folder)
    if same is not None:
        logger.info("%s: already onboarded as %s (same name, class word and images); nothing to do", folder, same)
        return steps.OnboardResult(folder.name, "already-onboarded", dataset=same)
    t0 = time.time()
    sub = validate(ws, folder)
    previous, out = ws.latest_checkpoint(), ws.next_checkpoint(sub.name)
    logger.info("onboarding %s (%s, %d shots) as %s", sub.name, sub.class_word, len(sub.source_sha256), out.name)
    times = {"validate": round(time.time() - t0, 2)}
    try:
        dataset = _timed(times, "version_dataset", version_dataset, ws, sub)
        result, reported = _timed(times, "train", train, ws, dataset, out)
        evaluation = _timed(times, "evaluate", evaluate, ws, out, previous)
        data_rec, ckpt_rec = _timed(times, "version_checkpoint", version_checkpoint, ws, dataset, out,
                                    f"onboard {out.name}: {sub.class_word} ({len(sub.source_sha256)} shots)")
    except BaseException:
        logger.error("onboarding %s failed before its commit: discarding the attempt", sub.name)
        steps.discard_attempt(ws, sub, out)
        raise
    run_id, version = _timed(times, "register", register, ws, checkpoint=out, concept=sub.name,
                             class_word=sub.class_word, losses=reported, train_seconds=result.seconds,
                             evaluation=evaluation, lineage=steps.lineage_tags(ws, data_rec, ckpt_rec),
                             parent_run_id=parent_run_id)
    decision, production = _timed(times, "gate", gate, ws, version, evaluation)
    return steps.OnboardResult(sub.name, "onboarded", ws.rel(out), data_rec.path, version, run_id, decision.summary(),
                               production, evaluation.current | {"final_fidelity": evaluation.metrics["final_fidelity"]},
                               times | {"train_in_worker": round(result.seconds, 2)})


def _timed(times: dict, name: str, fn, *args, **kwargs):
    """Call a task and record the wall time the flow saw (Prefect's own per-task cost included)."""
    t0 = time.time()
    try:
        return fn(*args, **kwargs)
    finally:
        times[name] = round(time.time() - t0, 2)
