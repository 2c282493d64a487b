"""The forgetting protocol after one onboarding step.

The matrix A[k][j] needs every earlier step's scores: each checkpoint carries its history in
`forgetting.json` (step records + sequence metrics), so step k reads step k-1's file and appends.
theta_0's RCF images are drawn again from the base with the protocol's fixed seeds (cheap, and the
base is immutable: its hash is in the ledger).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from components.workspace.layout import Workspace

FORGETTING_FILE = "forgetting.json"


@dataclass
class StepEvaluation:
    metrics: dict  # sequence metrics over every step so far (matrix, avg_forgetting, ...)
    step: dict  # this step's record
    current: dict  # gate inputs: new_concept_fidelity (A[k][k]), rcf_similarity, rcf_class_acc, avg_forgetting
    heatmap: Path
    samples: Path


def _steps_from_records(records: list[dict]):
    from components.evaluation.forgetting import ConceptScore, StepEval

    return [
        StepEval(r["task"], [ConceptScore(**c) for c in r["concepts"]], r["rcf_class_acc"], r["rcf_similarity"])
        for r in records
    ]


def history_without(records: list[dict], name: str) -> list[dict]:
    """A forgetting history with concept `name` taken out: the step that learned it and its score in
    every other step are dropped (the history then holds nothing of the concept, not even its scores),
    and so is the newest step, which the step of the removal replaces. The matrix stays square: row i
    is "after learning concept i", the last row "now"."""
    kept = [r for r in records if not (r["concepts"] and r["concepts"][-1]["name"] == name)]
    return [{**r, "concepts": [c for c in r["concepts"] if c["name"] != name]} for r in kept][:-1]


def evaluate_checkpoint(
    ws: Workspace,
    checkpoint: Path,
    previous: Path | None,
    figures_dir: Path,
    record: bool = True,
    show_progress: bool = False,
    history: list[dict] | None = None,
) -> StepEvaluation:
    """Score `checkpoint` (theta_k) with the forgetting protocol; with `record`, write `forgetting.json`
    into it (done once, before the checkpoint is versioned; `lfsd evaluate` re-scores without writing).
    `show_progress`: a progress bar on a terminal (a command of its own; not inside a Prefect run's log).
    `history`: the step records this step follows (default: `previous`'s; a removal passes its own)."""
    import torch

    from components.device import placement
    from components.evaluation.bounded import (
        including,
        last_row_forgetting,
        last_scored_steps,
        needs_full_row,
        step_plan,
    )
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator, sequence_metrics, step_record
    from components.evaluation.nearness import read_report
    from components.evaluation.plots import save_heatmap, save_samples
    from components.lifelong import LifelongModel
    from components.model.pipeline import load
    from components.progress import progress
    from components.training.methods import uses_icgen

    torch.set_num_threads(ws.params.runtime.threads)
    where = placement(ws.params.runtime)
    clip, dino = load_evaluator(ws.evaluator_dir)
    evaluator = ForgettingEvaluator(clip, dino, ws.params.forgetting)
    model = LifelongModel.from_checkpoint(checkpoint, ws.base_dir, fold=True)  # same outputs, cost flat in k
    model.bundle.place(where)
    entries, f = model.ledger.entries, ws.params.forgetting
    if history is None:
        history = json.loads((previous / FORGETTING_FILE).read_text())["steps"] if previous else []
    plan = step_plan(last_scored_steps([e.name for e in entries[:-1]], history), f.sample_size, f.full_every)
    near = set(read_report(checkpoint).get("warned", []))  # scored in full this step (nearness_check.py)
    plan = including(plan, [i for i, e in enumerate(entries) if e.name in near])
    classes = list(dict.fromkeys(entries[i].class_word for i in (range(len(entries)) if plan is None else plan)))
    evaluator.base_rcf_images(load(ws.base_dir).requires_grad_(False).place(where), classes)
    icgen = uses_icgen(model.ledger.method, model.bundle.has_context_path)
    with progress(
        f"scoring {Path(checkpoint).name}", evaluator.work_items(model, classes, plan), enabled=show_progress
    ) as advance:
        step = evaluator.score_step(model, icgen=icgen, rcf_classes=classes, advance=advance, only=plan)
    protocol = "full" if plan is None else "bounded"
    records = [*history, step_record(step) | {"protocol": protocol}]
    metrics = sequence_metrics(_steps_from_records(records))
    if plan is not None and needs_full_row(last_row_forgetting(metrics["matrix"]), ws.params.gate.max_avg_forgetting):
        rest = evaluator.score_step(
            model, icgen=icgen, rcf_classes=[], only=[i for i in range(len(entries)) if i not in plan]
        )
        order = {e.name: i for i, e in enumerate(entries)}
        step.concepts = sorted([*step.concepts, *rest.concepts], key=lambda c: order[c.name])
        step.samples |= rest.samples
        protocol = "bounded, then the full row (the sample came near the gate's avg_forgetting bound)"
        records[-1] = step_record(step) | {"protocol": protocol}
        metrics = sequence_metrics(_steps_from_records(records))
    if record:
        (Path(checkpoint) / FORGETTING_FILE).write_text(json.dumps({"steps": records, "metrics": metrics}, indent=2))
    names = metrics["concepts"]
    figures_dir.mkdir(parents=True, exist_ok=True)
    heatmap = save_heatmap(
        metrics["matrix"], names, f"{model.ledger.method}: fidelity A[k][j]", figures_dir / "forgetting_heatmap.png"
    )
    samples = save_samples(step.samples, [n for n in names if n in step.samples], figures_dir / "samples.png")
    current = {
        "new_concept_fidelity": step.concepts[-1].fidelity,
        "rcf_similarity": step.rcf_similarity,
        "rcf_class_acc": step.rcf_class_acc,
        "avg_forgetting": metrics["avg_forgetting"],
        "confusion": metrics["confusion"],
    }
    return StepEvaluation(metrics, records[-1], current, heatmap, samples)
