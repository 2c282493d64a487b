"""MLflow for one onboarded concept: a run with everything needed to compare it, a registered
pyfunc version with lineage tags, the `candidate` alias, and the gate's verdict on `production`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from components.onboarding.faults import die_here_if_asked
from components.onboarding.gate import GateDecision
from components.onboarding.run_story import log_dataset_input, log_forgetting_history, log_training_rows
from components.onboarding.workspace import Workspace
from components.registry.model_card import CardConcept, concepts_tag, version_card

GATE_TAG = "lfsd.gate"
SEQUENCE_METRICS = ("final_fidelity", "avg_forgetting", "bwt", "rcf_preservation", "rcf_class_acc",
                    "new_concept_fidelity", "text_alignment", "final_clip_i")
GATE_REASON_TAG = "lfsd.gate_reason"


@dataclass(frozen=True)
class Registration:
    run_id: str
    version: str
    production: str | None  # the production version after the gate


def start_parent_run(ws: Workspace, run_name: str, concepts: list[str]) -> str:
    """An (ended) parent run a sequence's per-concept runs nest under; returns its id."""
    import mlflow

    from components.registry import setup_tracking

    setup_tracking(ws.root, ws.params.pipeline.experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({"lfsd.kind": "sequence", "lfsd.concepts": ",".join(concepts)})
        mlflow.log_params({"method": ws.params.training.method, "n_concepts": len(concepts)})
        return run.info.run_id


def finish_parent_run(ws: Workspace, run_id: str, metrics: dict, status: str = "FINISHED") -> None:
    import mlflow

    from components.registry import setup_tracking

    setup_tracking(ws.root, ws.params.pipeline.experiment)
    client = mlflow.MlflowClient()
    for k, v in metrics.items():
        if isinstance(v, (int, float)):
            client.log_metric(run_id, k, float(v))
    client.set_terminated(run_id, status)


def log_and_register(
    ws: Workspace,
    *,
    checkpoint: Path,
    concept: str,
    class_word: str,
    losses: list[dict],
    train_seconds: float,
    evaluation,
    lineage: dict[str, str],
    parent_run_id: str | None = None,
    stage_seconds: dict[str, float] | None = None,
) -> tuple[str, str]:
    """One run per concept (nested under `parent_run_id` if given) and a new model version with the
    lineage tags; the version gets alias `candidate`. Returns (run_id, version). `stage_seconds`: how long
    each step before registration took (`seconds.<step>` metrics: where an onboarding's time goes, per
    run, comparable in the MLflow UI as the chain grows)."""
    import mlflow

    from components.registry import CANDIDATE, set_alias, setup_tracking

    setup_tracking(ws.root, ws.params.pipeline.experiment)
    name = ws.params.pipeline.model_name
    tags = {**lineage, "lfsd.concept": concept, "lfsd.class_word": class_word}
    done = registered_version(ws, lineage["lfsd.checkpoint_dvc_md5"])
    if done is not None:  # a retry after a failure past registration: do not register twice
        set_alias(name, CANDIDATE, done.version)
        return done.run_id, str(done.version)
    kwargs = {"parent_run_id": parent_run_id, "nested": True} if parent_run_id else {}
    concepts = card_concepts(checkpoint)
    tags |= {"lfsd.card_concepts": concepts_tag(concepts)}
    with mlflow.start_run(run_name=Path(checkpoint).name, tags={**tags, "lfsd.kind": "concept"}, **kwargs) as run:
        cfg = dataclasses.asdict(ws.params.training)
        mlflow.log_params({f"training.{k}": v for k, v in cfg.items() if k != "class_candidates"})
        mlflow.log_params({"concept": concept, "class_word": class_word, "step": len(evaluation.metrics["concepts"])})
        log_dataset_input(lineage["lfsd.dataset_path"], lineage["lfsd.dataset_dvc_md5"], concept, class_word,
                          shots_in(ws.root / lineage["lfsd.dataset_path"]))
        log_training_rows(losses)
        _log_evaluation(evaluation)
        mlflow.log_metric("train_seconds", train_seconds)
        if stage_seconds:
            mlflow.log_metrics({f"seconds.{k}": float(v) for k, v in stage_seconds.items()})
        mlflow.log_dict({"steps": [evaluation.step], "metrics": evaluation.metrics}, "forgetting.json")
        die_here_if_asked("during-register")
        version = _register_in_run(ws, checkpoint, name, tags)
    _card_and_candidate(name, version)
    return run.info.run_id, version


def _log_evaluation(evaluation) -> None:
    """The sequence metrics, this step's gate inputs, the forgetting history and the figures (active run)."""
    import mlflow

    m = evaluation.metrics
    mlflow.log_metrics({k: float(m[k]) for k in SEQUENCE_METRICS})
    mlflow.log_metrics({f"step.{k}": float(v) for k, v in evaluation.current.items()})
    log_forgetting_history(m)
    mlflow.log_artifact(str(evaluation.heatmap), "figures")
    mlflow.log_artifact(str(evaluation.samples), "figures")


def _register_in_run(ws: Workspace, checkpoint: Path, name: str, tags: dict[str, str]) -> str:
    """Log the chain as a pyfunc in the active run and register it with its lineage tags in ONE call: a
    version without them can never exist, so a rerun after a kill finds the version by its checkpoint md5
    instead of registering twice. Returns the version."""
    import mlflow

    from components.registry import log_lifelong_model

    info = log_lifelong_model(checkpoint, ws.base_dir, name="model", tags=tags, share_with=name)
    return str(mlflow.register_model(info.model_uri, name, tags=tags).version)


def _card_and_candidate(name: str, version: str) -> None:
    import mlflow

    from components.registry import CANDIDATE, set_alias

    client = mlflow.MlflowClient()
    client.update_model_version(name, version, description=version_card(client, name, version))
    set_alias(name, CANDIDATE, version)


def log_and_register_removal(ws: Workspace, *, checkpoint: Path, record, evaluation, lineage: dict[str, str]) -> tuple[str, str]:
    """The removal's run (kind `removal`: its metrics, the erasure record, the erased concept's measured
    fidelity) and its model version, tagged `lfsd.forgot` and `lfsd.forgot_reason`; alias `candidate`.
    Registered once: a rerun finds the version by its checkpoint md5."""
    import mlflow

    from components.registry import setup_tracking

    setup_tracking(ws.root, ws.params.pipeline.experiment)
    name = ws.params.pipeline.model_name
    done = registered_version(ws, lineage["lfsd.checkpoint_dvc_md5"])
    if done is not None:
        return done.run_id, str(done.version)
    tags = {**lineage, "lfsd.forgot": record.concept, "lfsd.forgot_reason": record.reason,
            "lfsd.erasure_record": record.git_path(), "lfsd.card_concepts": concepts_tag(card_concepts(checkpoint))}
    with mlflow.start_run(run_name=Path(checkpoint).name, tags={**tags, "lfsd.kind": "removal"}) as run:
        _log_evaluation(evaluation)
        mlflow.log_metrics({f"erased.{k}": float(v) for k, v in record.measured.items()})
        mlflow.log_dict(dataclasses.asdict(record), "erasure.json")
        version = _register_in_run(ws, checkpoint, name, tags)
    _card_and_candidate(name, version)
    return run.info.run_id, version


def shots_in(dataset: Path) -> int:
    """The number of images in a versioned concept dataset (its concept.yaml is not a shot)."""
    from components.validation.rules import IMAGE_SUFFIXES

    return sum(1 for p in dataset.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if dataset.is_dir() else 0


def card_concepts(checkpoint: Path) -> list[CardConcept]:
    from components.lifelong import read_ledger

    return [CardConcept(e.task, e.name, e.token, e.class_word) for e in read_ledger(checkpoint).entries]


def registered_version(ws: Workspace, checkpoint_md5: str):
    """The model version already registered for this checkpoint, if any."""
    import mlflow

    from components.registry import setup_tracking

    setup_tracking(ws.root, ws.params.pipeline.experiment)
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name='{ws.params.pipeline.model_name}'")
    except mlflow.exceptions.MlflowException:
        return None
    return next((v for v in versions if (v.tags or {}).get("lfsd.checkpoint_dvc_md5") == checkpoint_md5), None)


def running_concept_runs(ws: Workspace) -> list[str]:
    """End as KILLED the concept runs of this workspace left RUNNING by a dead writer (call it only
    under the writer lock); a run is this workspace's when its `lfsd.git_commit` is in this repo."""
    import mlflow

    from components.registry import mlflow_dir, setup_tracking, tracking_uri_default
    from components.versioning.git import has_commit

    if tracking_uri_default(ws.root).startswith("sqlite:") and not (mlflow_dir(ws.root) / "mlflow.db").exists():
        return []  # no store yet: no run can be left RUNNING (and bad input must not create one)
    exp = setup_tracking(ws.root, ws.params.pipeline.experiment)
    client = mlflow.MlflowClient()
    runs = client.search_runs([exp], "attributes.status = 'RUNNING' and tags.`lfsd.kind` = 'concept'")
    ours = [r for r in runs if (c := r.data.tags.get("lfsd.git_commit")) and has_commit(ws.root, c)]
    for r in ours:
        client.set_terminated(r.info.run_id, "KILLED")
    return [r.info.run_id for r in ours]


def apply_gate(ws: Workspace, version: str, decision: GateDecision) -> str | None:
    """Pass: `production` moves to `version`. Fail: `production` stays; the version says why.
    Returns the production version afterwards."""
    import mlflow

    from components.registry import PRODUCTION, get_alias_version, promote, setup_tracking

    setup_tracking(ws.root, ws.params.pipeline.experiment)
    name = ws.params.pipeline.model_name
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version, GATE_TAG, "passed" if decision.passed else "failed")
    client.set_model_version_tag(name, version, GATE_REASON_TAG, decision.summary())
    client.update_model_version(name, version, description=version_card(client, name, version))
    if decision.passed:
        promote(name, version, reason=f"gate {decision.summary()}")
    return get_alias_version(name, PRODUCTION)
