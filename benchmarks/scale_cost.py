"""Does task k = n cost what task 1 costs? Paired, interleaved timings on the chain a scale run left.

    python -m benchmarks.scale_cost outputs/scale/lfs-s0 --json docs/figures/scale/cost-lfs-seed0.json

`benchmarks/scale.py` times every step once, as the chain grows: on a shared 2-core machine those times
drift by 30% or more within one process for the same work (measured: five identical task-1 trainings in
one process took 9.8, 11.5, 9.8, 7.2, 6.7 s). The targets are ratios (k = 50 against k = 1), so this
measures them as ratios in one run: round r does, for theta_1 and then theta_n (the chain's first and last
checkpoints), the same four things, and a slow spell hits both alike:
  load      `LifelongModel.from_checkpoint(fold=True)` (what serving, evaluation and training load)
  generate  one batch, fixed prompts of the chain's first concept, seeds and steps
  score     the forgetting evaluator on the chain's first concept (one concept's share of a step's
            bounded evaluation)
  train     one whole task on the same held-out concept and seed (`train_task`, the pipeline's loop)
The report holds every round's seconds, the medians and the ratio of medians (theta_n over theta_1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

GEN_BATCH, GEN_SEED = 4, 1234
TASKS = ("load", "generate", "score", "train")


def _held_out_concept(names: set[str], seed: int, where: Path) -> Path:
    """A world concept the chain has not learned (its class and look drawn like the sequence's)."""
    from components.world.concepts import write_concepts

    for extra in range(1, 50):
        folder = write_concepts(where / f"held-out-{extra}", n=1, shots=4, seed=seed + 1000 * extra)[0]
        if folder.name.split("-", 1)[-1] not in names:  # NN-name
            return folder
    raise RuntimeError("no held-out concept found")


def measure(run_dir: Path, rounds: int, base: Path, evaluator_dir: Path, overrides: list[str] = (), log=print) -> dict:
    import torch

    from benchmarks.forgetting import apply_overrides
    from components.config import load_params
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel, read_ledger
    from components.model.sampling import generate
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method, uses_icgen

    params = apply_overrides(load_params(), list(overrides))
    torch.set_num_threads(params.runtime.threads)
    checkpoints = sorted(p for p in Path(run_dir).iterdir() if (p / "ledger.json").is_file())
    first, last = checkpoints[0], checkpoints[-1]
    ledger = read_ledger(last)
    n, method_name = len(ledger.entries), ledger.method
    method = get_method(method_name)
    evaluator = ForgettingEvaluator(*load_evaluator(evaluator_dir), params.forgetting)
    probe = ledger.entries[0]  # scored in both models: it is concept 1 of both
    prompts = [f"a {probe.token} {probe.class_word} on a white background"] * GEN_BATCH
    seeds = [GEN_SEED + i for i in range(GEN_BATCH)]
    cfg = dataclasses.replace(params.training, method=method_name, seed=params.training.seed * 100 + n + 1)
    seconds = {label: {t: [] for t in TASKS} for label in ("k1", "kn")}
    with tempfile.TemporaryDirectory() as tmp:
        concept = read_concept(_held_out_concept(set(ledger.names()), 7, Path(tmp)))
        for r in range(rounds):
            for label, ckpt in (("k1", first), ("kn", last)):
                t0 = time.perf_counter()
                model = LifelongModel.from_checkpoint(ckpt, base, fold=not method.c_lora)
                seconds[label]["load"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                generate(
                    model.bundle,
                    prompts,
                    seeds,
                    steps=params.sampling.steps,
                    guidance_scale=params.sampling.guidance_scale,
                )
                seconds[label]["generate"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                evaluator.score_concept(model, probe, uses_icgen(method_name, model.bundle.has_context_path))
                seconds[label]["score"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                train_task(model, concept, method, cfg, Path(tmp) / f"{label}-{r}")
                seconds[label]["train"].append(time.perf_counter() - t0)
                log(
                    f"round {r + 1}/{rounds} {label}: " + ", ".join(f"{t} {seconds[label][t][-1]:.2f} s" for t in TASKS)
                )
                del model
    medians = {label: {t: round(statistics.median(v), 3) for t, v in per.items()} for label, per in seconds.items()}
    return {
        "command": f"python -m benchmarks.scale_cost {run_dir} --rounds {rounds}"
        + "".join(f" --set {o}" for o in overrides),
        "machine": f"{platform.machine()}, torch threads {params.runtime.threads}",
        "method": method_name,
        "k1": 1,
        "kn": n,
        "rounds": rounds,
        "held_out": concept.name,
        "seconds": {label: {t: [round(s, 3) for s in v] for t, v in per.items()} for label, per in seconds.items()},
        "median": medians,
        "ratio_kn_over_k1": {t: round(medians["kn"][t] / medians["k1"][t], 3) for t in TASKS},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="A scale run's checkpoints (its --work folder / METHOD).")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=Path("models/base"))
    ap.add_argument("--evaluator", type=Path, default=Path("models/evaluator"))
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="As for the scale run it measures "
        "(e.g. runtime.threads=2); the same training settings make the same task.",
    )
    args = ap.parse_args(argv)
    report = measure(args.run_dir, args.rounds, args.model, args.evaluator, args.overrides)
    print(json.dumps({"median": report["median"], "ratio_kn_over_k1": report["ratio_kn_over_k1"]}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
