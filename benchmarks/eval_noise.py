"""How much of a sequence's avg forgetting is the draw, not the model: re-score saved checkpoints with
shifted sample seeds (docs/log/results-2026-12-01-to-12-04.md, "Why the forgetting bar fails").

    python -m benchmarks.eval_noise outputs/benchmark/seed1/finetune/05-pepete --offsets 0,7
    python -m benchmarks.eval_noise outputs/benchmark-2468-fullkv/seed0/lfs/05-falofa --offsets 0 --no-references

The forgetting protocol fixes its sample seeds so that steps and methods are compared on paired draws;
this probe shifts them (offset o: seeds of concept j become those of tag j + 100 o) and re-evaluates every
task checkpoint of one sequence (the last checkpoint's ledger lists them, in order) with the `params.yaml`
protocol. The spread of
avg forgetting over offsets is the evaluation's own noise; the spread over training seeds in the
benchmark is the model's.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    import numpy as np
    import torch

    import components.evaluation.forgetting as protocol
    from components.config import load_params
    from components.evaluation.embedder import load_evaluator
    from components.lifelong import LifelongModel, read_ledger
    from components.training.methods import get_method

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("last", type=Path, help="the last task checkpoint of a sequence")
    ap.add_argument("--offsets", default="0,7", help="comma-separated sample-seed offsets")
    ap.add_argument(
        "--no-references",
        action="store_true",
        help="draw every concept without its references as context (is the loss in the context path?)",
    )
    ap.add_argument("--matrix", action="store_true", help="print the whole A[k][j] matrix")
    ap.add_argument("--base", type=Path, default=Path("models/base"))
    ap.add_argument("--evaluator", type=Path, default=Path("models/evaluator"))
    args = ap.parse_args()

    params = load_params()
    torch.set_num_threads(params.runtime.threads)
    clip, dino = load_evaluator(args.evaluator)
    checkpoints = [Path(e.checkpoint) for e in read_ledger(args.last).entries]
    fixed_seeds = protocol._seeds
    for offset in (int(o) for o in args.offsets.split(",")):
        protocol._seeds = lambda tag, n, o=offset: fixed_seeds(tag + 100 * o, n)  # the probe's only change
        evaluator = protocol.ForgettingEvaluator(clip, dino, params.forgetting)
        steps = []
        for ckpt in checkpoints:
            model = LifelongModel.from_checkpoint(ckpt, args.base)
            icgen = (
                get_method(model.ledger.method).icgen and params.forgetting.use_references and not args.no_references
            )
            steps.append(evaluator.score_step(model, icgen=icgen, rcf_classes=[]))
        metrics = protocol.sequence_metrics(steps)
        print(
            f"offset {offset}: avg_forgetting {metrics['avg_forgetting']:.3f}  "
            f"final row {np.round(np.array(metrics['matrix'])[-1], 3).tolist()}",
            flush=True,
        )
        if args.matrix:
            for row in np.round(np.array(metrics["matrix"], dtype=float), 3).tolist():
                print("   ", row, flush=True)
    protocol._seeds = fixed_seeds


if __name__ == "__main__":
    main()
