"""MLflow for one step of the chain: a run with everything needed to compare it (an onboarded concept,
or a removal) and a registered pyfunc version with lineage tags and its model card, alias `candidate`.
The gate's verdict on `production` is `gate.apply_gate`; a sequence's parent run is `parent_run.py`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from components.publishing.run_story import log_dataset_input, log_forgetting_history, log_training_rows
from components.registry.model_card import CardConcept, concepts_tag, version_card
from components.workspace.faults import die_here_if_asked
from components.workspace.layout import Workspace
from components.workspace.mlflow_store import open_tracking, registered_version

SEQUENCE_METRICS = (
    "final_fidelity",
    "avg_forgetting",
    "bwt",
    "rcf_preservation",
    "rcf_class_acc",
    "new_concept_fidelity",
    "text_alignment",
    "final_clip_i",
    "confusion",  # issue 32: the last row's mean share of samples nearer another learned concept
    "margin",
)


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

    from components.registry import CANDIDATE, set_alias

    open_tracking(ws)
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
        log_dataset_input(
            lineage["lfsd.dataset_path"],
            lineage["lfsd.dataset_dvc_md5"],
            concept,
            class_word,
            shots_in(ws.root / lineage["lfsd.dataset_path"]),
        )
        log_training_rows(losses)
        _log_evaluation(evaluation)
        mlflow.log_metric("train_seconds", train_seconds)
        if stage_seconds:
            mlflow.log_metrics({f"seconds.{k}": float(v) for k, v in stage_seconds.items()})
        mlflow.log_dict({"steps": [evaluation.step], "metrics": evaluation.metrics}, "forgetting.json")
        from components.evaluation.nearness import REPORT_FILE

        if (Path(checkpoint) / REPORT_FILE).is_file():  # the nearness check before training, in full
            mlflow.log_artifact(str(Path(checkpoint) / REPORT_FILE))
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


def log_and_register_removal(
    ws: Workspace, *, checkpoint: Path, record, evaluation, lineage: dict[str, str]
) -> tuple[str, str]:
    """The removal's run (kind `removal`: its metrics, the erasure record, the erased concept's measured
    fidelity) and its model version, tagged `lfsd.forgot` and `lfsd.forgot_reason`; alias `candidate`.
    Registered once: a rerun finds the version by its checkpoint md5."""
    import mlflow

    open_tracking(ws)
    name = ws.params.pipeline.model_name
    done = registered_version(ws, lineage["lfsd.checkpoint_dvc_md5"])
    if done is not None:
        return done.run_id, str(done.version)
    tags = {
        **lineage,
        "lfsd.forgot": record.concept,
        "lfsd.forgot_reason": record.reason,
        "lfsd.erasure_record": record.git_path(),
        "lfsd.card_concepts": concepts_tag(card_concepts(checkpoint)),
    }
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


def lineage_tags(ws: Workspace, ckpt_rec, data_rec=None) -> dict[str, str]:
    """The lineage every registered version carries (what `registry.aliases` requires before a promotion):
    the checkpoint's DVC md5, path and git commit, the base hash, method and ledger; for an onboarding
    also its dataset (`data_rec`) and whether it trained with ICGen. A removal has no dataset."""
    from components.lifelong import LEDGER_FILE, Ledger

    ledger = Ledger.read(ws.root / ckpt_rec.path / LEDGER_FILE)
    dataset = {"lfsd.dataset_dvc_md5": data_rec.md5, "lfsd.dataset_path": data_rec.path} if data_rec else {}
    return (
        dataset
        | {
            "lfsd.checkpoint_dvc_md5": ckpt_rec.md5,
            "lfsd.checkpoint_path": ckpt_rec.path,
            "lfsd.git_commit": ckpt_rec.commit,
            "lfsd.base_hash": ledger.base_hash,
            "lfsd.method": ledger.method,
            "lfsd.ledger": ",".join(ledger.names()),
        }
        | icgen_tag(ws.root / ckpt_rec.path)
        | near_tag(ws.root / ckpt_rec.path)
    )


def icgen_tag(checkpoint: Path) -> dict[str, str]:
    """`lfsd.icgen`: whether the task trained with ICGen, and why not (a base without a context path)."""
    from components.lifelong.checkpoint import TRAINING_FILE

    training = checkpoint / TRAINING_FILE
    status = json.loads(training.read_text()).get("icgen") if training.is_file() else None
    return {"lfsd.icgen": status} if status else {}


def near_tag(checkpoint: Path) -> dict[str, str]:
    """`lfsd.near`: the learned concepts the new one was near when it arrived (`<xubyzo>: 0.91`), from the
    nearness check's report in its checkpoint; absent when none was near."""
    from components.evaluation.nearness import read_report

    said = read_report(checkpoint).get("summary")
    return {"lfsd.near": said} if said else {}
