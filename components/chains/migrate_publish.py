"""The end of a migration, under the writer lock: the side chain's newest checkpoint registered once as a
new version of the same model (tag `lfsd.chain`), the gate's verdict on it as tags (production never
moves here: a person promotes), and the scorecard against the old chain: printed, one MLflow run with the
table, and a section of the version's model card. Each part is done once: a rerun after a kill finds
the version by its checkpoint md5 and the scorecard run by the version's `lfsd.scorecard_run` tag."""

from __future__ import annotations

from pathlib import Path

from components.stepping import Log
from components.workspace.layout import Workspace
from components.workspace.side_chain import CHAIN_TAG, SideChain

SCORECARD_TAG = "lfsd.scorecard_run"


def _evaluation(ws: Workspace, new: SideChain, checkpoint: Path, previous: Path | None):
    """The newest step's evaluation as committed (`forgetting.json`) with its figures, or scored again
    (deterministic: the same numbers) when the figures are gone (another machine, a cleaned state folder)."""
    from components.chains.migrate import read_history
    from components.onboarding.scoring import StepEvaluation, evaluate_checkpoint

    figures = ws.state_dir / "figures" / new.label / checkpoint.name
    heatmap, samples = figures / "forgetting_heatmap.png", figures / "samples.png"
    if heatmap.is_file() and samples.is_file():
        h = read_history(checkpoint)
        step = h["steps"][-1]
        current = {
            "new_concept_fidelity": step["concepts"][-1]["fidelity"],
            "rcf_similarity": step["rcf_similarity"],
            "rcf_class_acc": step["rcf_class_acc"],
            "avg_forgetting": h["metrics"]["avg_forgetting"],
            "confusion": h["metrics"].get("confusion", float("nan")),  # absent: scored before confusion existed
        }
        return StepEvaluation(h["metrics"], step, current, heatmap, samples)
    return evaluate_checkpoint(new, checkpoint, previous, figures, record=False)


def register_new_chain(ws: Workspace, new: SideChain, log: Log):
    """The side chain's newest checkpoint as a model version (once) and the gate's verdict as its tags.
    Returns (version, GateDecision, evaluation)."""
    from components.chains.migrate import chain_tags
    from components.lifelong import read_ledger
    from components.onboarding import steps
    from components.publishing.concept_run import lineage_tags, log_and_register
    from components.publishing.gate import GATE_REASON_TAG, GATE_TAG, decide
    from components.versioning.store import committed_record
    from components.workspace.mlflow_store import client

    chain = new.checkpoints()
    latest, previous = chain[-1], (chain[-2] if len(chain) > 1 else None)
    evaluation = _evaluation(ws, new, latest, previous)
    entry = read_ledger(latest).entries[-1]
    ckpt_rec = committed_record(ws.root, new.rel(latest))
    data_rec = committed_record(ws.root, new.rel(Path(entry.references)))
    trained = steps.training_record(latest)
    _, version = log_and_register(
        new,
        checkpoint=latest,
        concept=entry.name,
        class_word=entry.class_word,
        losses=[trained["final"]],
        train_seconds=trained["seconds"],
        evaluation=evaluation,
        lineage=lineage_tags(new, ckpt_rec, data_rec) | chain_tags(new),
    )
    decision = decide(evaluation.current, ws.params.gate)
    c, name = client(ws), ws.params.pipeline.model_name
    c.set_model_version_tag(name, version, GATE_TAG, "passed" if decision.passed else "failed")
    c.set_model_version_tag(name, version, GATE_REASON_TAG, decision.summary())
    log(f"{new.label}: version {version} ({', '.join(new.learned_names())}), gate {decision.summary()}")
    return version, decision


def old_and_new_records(ws: Workspace, new: SideChain, log: Log) -> tuple[list[dict], list[dict]]:
    """Both chains' step records, each last row scored by the same protocol with the same sample seeds:
    the new chain's as its migration scored it, the old chain's scored again now with today's protocol."""
    from components.chains.migrate import read_history
    from components.onboarding.scoring import evaluate_checkpoint

    old_latest = ws.latest_checkpoint()
    old = read_history(old_latest)["steps"]
    log(f"scoring the old chain's {old_latest.name} with the same protocol for the scorecard ...")
    figures = ws.state_dir / "figures" / new.label / f"old-{old_latest.name}"
    again = evaluate_checkpoint(ws, old_latest, None, figures, record=False, history=old[:-1])
    return [*old[:-1], again.step], read_history(new.latest_checkpoint())["steps"]


def log_scorecard(ws: Workspace, new: SideChain, version: str, rows: list[dict], markdown: str) -> str:
    """One MLflow run `migrate-<label>` (kind `migration`): the scorecard as an MLflow table (the run's
    "Evaluation"/artifacts view) and markdown, each chain-level number as `old.*`/`new.*` metrics; the
    version is tagged with the run and its card gets the table. Returns the run id."""
    import mlflow

    from components.evaluation.scorecard import CARD_SECTION, CHAIN_ROW, columns
    from components.registry import PRODUCTION, get_alias_version
    from components.registry.model_card import version_card
    from components.workspace.mlflow_store import client, open_tracking

    open_tracking(ws)
    name = ws.params.pipeline.model_name
    tags = {
        "lfsd.kind": "migration",
        CHAIN_TAG: new.label,
        "lfsd.model_version": str(version),
        "lfsd.production_at_migration": str(get_alias_version(name, PRODUCTION)),
    }
    with mlflow.start_run(run_name=f"migrate-{new.label}", tags=tags) as run:
        mlflow.log_table(columns(rows), artifact_file="scorecard.json")
        mlflow.log_text(markdown, "scorecard.md")
        for r in rows:
            if r["concept"] == CHAIN_ROW:
                mlflow.log_metrics({f"old.{r['metric']}": r["old"], f"new.{r['metric']}": r["new"]})
    c = client(ws)
    card = version_card(c, name, version)
    c.update_model_version(name, version, description=f"{card}\n\n{CARD_SECTION}\n\n{markdown}\n")
    c.set_model_version_tag(name, version, SCORECARD_TAG, run.info.run_id)
    return run.info.run_id


def publish(ws: Workspace, new: SideChain, result, log: Log):
    """Register, gate (tags), scorecard: fills and returns `result` (a `migrate.MigrationResult`)."""
    from components.evaluation.scorecard import render_markdown, render_text, scorecard
    from components.registry import PRODUCTION, get_alias_version
    from components.workspace.mlflow_store import client

    version, decision = register_new_chain(ws, new, log)
    old, fresh = old_and_new_records(ws, new, log)
    rows = scorecard(old, fresh)
    old_label = f"old ({ws.rel(ws.base_dir)})"
    print_text = render_text(rows, old_label, f"{new.label} ({new.base_rel})")
    log(print_text)
    name = ws.params.pipeline.model_name
    run_id = (client(ws).get_model_version(name, version).tags or {}).get(SCORECARD_TAG)
    if run_id is None:
        run_id = log_scorecard(ws, new, version, rows, render_markdown(rows, "old chain", new.label))
    result.version, result.gate, result.scorecard, result.scorecard_run = version, decision.summary(), rows, run_id
    result.production = get_alias_version(name, PRODUCTION)
    log(
        f"scorecard logged to MLflow run {run_id} (migrate-{new.label}); production stays version "
        f"{result.production}: `lfsd promote {version} --reason ...` serves the new chain, `lfsd rollback` returns"
    )
    return result
