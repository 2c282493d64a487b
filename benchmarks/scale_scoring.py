"""Scoring one step of the scale benchmark (`scale.py`) concept by concept, each timed: the pipeline's own
evaluator calls (`ForgettingEvaluator`), confusion included, so its rows mean what the pipeline's do."""

from __future__ import annotations

import time


def score_row(
    evaluator, model, icgen: bool, base_bundle, only: list[int]
) -> tuple[dict, dict[str, float], dict, dict[str, float]]:
    """The ledger positions `only`, each item timed: (score per position, with its confusion against every
    learned concept as the pipeline measures it; seconds per concept, RCF per class of those concepts,
    seconds per class)."""
    import numpy as np

    from components.evaluation.forgetting import rcf_prompts

    entries = model.ledger.entries
    scores, concept_s, embedded = {}, {}, {}
    for i in only:
        t0 = time.perf_counter()
        scores[i], _, embedded[entries[i].name] = evaluator.score_concept_embedded(model, entries[i], icgen)
        concept_s[entries[i].name] = time.perf_counter() - t0
    with_confusion = evaluator.with_confusion(model, [scores[i] for i in only], embedded)  # ForgettingEvaluator's
    scores = dict(zip(only, with_confusion))
    rcf, class_s = {}, {}
    for cls in dict.fromkeys(entries[i].class_word for i in only):
        t0 = time.perf_counter()
        evaluator.base_rcf_images(base_bundle, [cls])
        pairs = [evaluator.score_rcf_prompt(model, p) for p in rcf_prompts([cls])]
        rcf[cls] = (float(np.mean([a for a, _ in pairs])), float(np.mean([s for _, s in pairs])))
        class_s[cls] = time.perf_counter() - t0
    return scores, concept_s, rcf, class_s


def step_eval(task: int, scores, rcf: dict, classes) -> object:
    import numpy as np

    from components.evaluation.forgetting import StepEval

    picked = [rcf[c] for c in classes]
    return StepEval(task, list(scores), float(np.mean([a for a, _ in picked])), float(np.mean([s for _, s in picked])))
