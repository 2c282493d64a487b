"""Run a concept sequence through one method, evaluating forgetting after every task.

In-process and self-contained: the method benchmarks and the tests call this; the pipeline runs the
same `train_task` per concept through a launcher (Ray Train) and the same evaluator after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.config import TrainingConfig
from components.device import CPU, Placement
from components.evaluation.forgetting import ForgettingEvaluator, StepEval, sequence_metrics
from components.lifelong import LifelongModel
from components.training.concept import read_concept
from components.training.loop import TaskResult, train_task
from components.training.methods import get_method


@dataclass
class SequenceResult:
    method: str
    tasks: list[TaskResult]
    steps: list[StepEval]
    metrics: dict


def run_sequence(
    base_dir: Path,
    concept_dirs: list[Path],
    method_name: str,
    train_cfg: TrainingConfig,
    evaluator: ForgettingEvaluator | None,
    out_root: Path,
    log: Callable[[str], None] = print,
    on_task: Callable[[int], None] | None = None,
    where: Placement = CPU,
) -> SequenceResult:
    """Teach the concepts in order; checkpoints land in out_root/NN-name/. `on_task(1)` after each task
    (trained and scored): a progress bar's advance. `where`: device and precision of training and scoring."""
    method = get_method(method_name)
    model = LifelongModel.from_base(base_dir, method_name)
    base = LifelongModel.from_base(base_dir, method_name) if evaluator else None
    if base is not None:
        base.bundle.requires_grad_(False).place(where)
    tasks, steps = [], []
    for k, folder in enumerate(concept_dirs, start=1):
        concept = read_concept(folder)
        cfg = dataclasses.replace(train_cfg, seed=train_cfg.seed * 100 + k)
        result = train_task(model, concept, method, cfg, Path(out_root) / f"{k:02d}-{concept.name}", where=where)
        tasks.append(result)
        log(
            f"[{method_name}] task {k} {concept.name}: {result.seconds:.1f} s, {result.step_seconds * 1000:.0f} ms/step"
        )
        if evaluator is not None:
            classes = list(dict.fromkeys(e.class_word for e in model.ledger.entries))
            evaluator.base_rcf_images(base.bundle, classes)
            step = evaluator.score_step(
                model, icgen=method.icgen and model.bundle.has_context_path, rcf_classes=classes
            )
            steps.append(step)
            log(
                f"[{method_name}]   fidelity "
                + " ".join(f"{c.fidelity:.3f}" for c in step.concepts)
                + f" | rcf sim {step.rcf_similarity:.3f} acc {step.rcf_class_acc:.2f}"
            )
        if on_task is not None:
            on_task(1)
    metrics = sequence_metrics(steps) if steps else {}
    return SequenceResult(method_name, tasks, steps, metrics)
