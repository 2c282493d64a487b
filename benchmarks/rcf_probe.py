"""One task, several method variants, task-1 RCF and fidelity: how `lambda_kd` and the KD templates
were chosen (docs/method.md).

    python -m benchmarks.rcf_probe outputs/concepts-12345/00-zorudo finetune lfs lfs:lambda_kd=20.0 lfs-no-icgen

Each spec is `method[:field=value...]` overriding `params.yaml` `training` (tuples as `a|b`, e.g.
`lfs:lambda_kd=1.0:kd_templates=a {}` for the bare template the first KD used); every variant starts from the
base, trains on the concept (seed 1) and is scored with the forgetting protocol (16 RCF seeds per prompt).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    import torch

    from components.config import load_params
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    p = load_params()
    torch.set_num_threads(p.runtime.threads)
    clip, dino = load_evaluator(Path("models/evaluator"))
    ev = ForgettingEvaluator(clip, dino, dataclasses.replace(p.forgetting, rcf_seeds=16))
    concept = read_concept(Path(argv[0]))
    ev.base_rcf_images(LifelongModel.from_base(Path("models/base"), "finetune").bundle, [concept.class_word])
    for spec in argv[1:]:
        method, *kv = spec.split(":")
        over = {
            k: tuple(v.split("|")) if isinstance(getattr(p.training, k), tuple) else type(getattr(p.training, k))(v)
            for k, v in (x.split("=", 1) for x in kv)
        }
        cfg = dataclasses.replace(p.training, method=method, seed=1, **over)
        model = LifelongModel.from_base(Path("models/base"), method)
        t0 = time.time()
        train_task(model, concept, get_method(method), cfg, Path("outputs/rcf_probe") / spec.replace(":", "_"))
        s = ev.score_step(model, icgen=get_method(method).icgen, rcf_classes=[concept.class_word])
        print(
            f"{spec:32s} fidelity {s.concepts[0].fidelity:.3f}  rcf sim {s.rcf_similarity:.3f}  "
            f"acc {s.rcf_class_acc:.2f}  ({time.time() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
