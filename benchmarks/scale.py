"""Lifelong at scale: teach a long world sequence and record, per step k, what the chain costs and keeps.

    lfsd benchmark scale --n 50 --seed 0 --methods lfs,finetune --json docs/figures/scale-seed0.json

Per step k (one JSON row): the full protocol's avg_forgetting and final fidelity over everything learned
so far, the fidelity of concepts 1, 10 and 25 (forgetting curves), RCF preservation over the classes seen
so far; the bounded protocol's estimate of the same from the same scores (`components/evaluation/
bounded.py`: what the pipeline computes at that step, since every score is a deterministic function of the
model, the prompts and the seeds); seconds of training, of full and of bounded evaluation, of the whole
step; bytes the step adds to storage (its checkpoint and its normalised shots: what DVC versions) and the
total; the time to load theta_k for serving (from disk, adapters folded) and to generate one batch with it
(and with the stacked model); peak and current RSS. Training and scoring are the pipeline's own code
(`train_task`, `ForgettingEvaluator`) run in-process.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import resource
import time
from pathlib import Path

GEN_BATCH, GEN_SEED = 4, 1234
TRACKED = (1, 10, 25)  # concepts whose fidelity is followed from the step they were learned on


def _bytes(*folders: Path) -> int:
    return sum(p.stat().st_size for f in folders for p in Path(f).rglob("*") if p.is_file())


def _rss_mb() -> tuple[float, float]:
    import psutil

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return round(peak, 1), round(psutil.Process().memory_info().rss / 2**20, 1)


def run_method(
    method_name: str,
    dirs: list[Path],
    params,
    base: Path,
    evaluator,
    work: Path,
    log=print,
    on_row=None,
    reference_every: int = 1,
) -> list[dict]:
    """One method over the whole sequence; returns one row per step (`on_row(rows)` after each: a long run
    keeps what it has measured). The reference (full-protocol) row is scored at every `reference_every`-th
    step and the last (1: every step, the exact definition; its O(k^2) cost is what the bounded protocol
    avoids); between them only what the bounded protocol scores is, and the reference fields are None."""
    from benchmarks.scale_scoring import score_row, step_eval
    from components.evaluation.bounded import last_scored_steps, step_plan
    from components.evaluation.forgetting import sequence_metrics, step_record
    from components.lifelong import LifelongModel
    from components.model.sampling import generate
    from components.onboarding.scoring import _steps_from_records
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    method, f = get_method(method_name), params.forgetting
    model = LifelongModel.from_base(base, method_name)
    base_bundle = LifelongModel.from_base(base, method_name).bundle
    measured, bounded_records, rows, total = [], [], [], 0
    for k, folder in enumerate(dirs, start=1):
        t_step = time.perf_counter()
        concept = read_concept(folder)
        cfg = dataclasses.replace(params.training, seed=params.training.seed * 100 + k, method=method_name)
        out = work / f"{k:02d}-{concept.name}"
        t0 = time.perf_counter()
        train_task(model, concept, method, cfg, out)
        train_s = time.perf_counter() - t0
        entries = model.ledger.entries
        # The bounded protocol at this step: its plan from what it scored before (it uses the same scores).
        plan = step_plan(
            last_scored_steps([e.name for e in entries[:-1]], bounded_records), f.sample_size, f.full_every
        )
        picked = list(range(len(entries))) if plan is None else plan
        reference = reference_every <= 1 or k % reference_every == 0 or k == len(dirs)
        scored = list(range(len(entries))) if reference else picked
        t0 = time.perf_counter()
        scores, concept_s, rcf, class_s = score_row(
            evaluator, model, method.icgen and model.bundle.has_context_path, base_bundle, scored
        )
        eval_s = time.perf_counter() - t0
        measured.append(step_eval(k, [scores[i] for i in scored], rcf, list(rcf)))
        full = sequence_metrics(measured) if reference else None
        classes = list(dict.fromkeys(entries[i].class_word for i in picked))
        bounded_records.append(step_record(step_eval(k, [scores[i] for i in picked], rcf, classes)))
        est = sequence_metrics(_steps_from_records(bounded_records))
        eval_bounded_s = sum(concept_s[entries[i].name] for i in picked) + sum(class_s[c] for c in classes)
        added = _bytes(out, folder)
        total += added
        t0 = time.perf_counter()
        served = LifelongModel.from_checkpoint(out, base, fold=True).folded()
        load_s = time.perf_counter() - t0
        prompts = [f"a {e.token} {e.class_word} on a white background" for e in entries[-GEN_BATCH:]]
        prompts = (prompts * GEN_BATCH)[:GEN_BATCH]
        seeds = [GEN_SEED + i for i in range(GEN_BATCH)]
        timings = {}
        for label, m in (("generate_s", served), ("generate_stacked_s", model)):
            t0 = time.perf_counter()
            generate(
                m.bundle, prompts, seeds, steps=params.sampling.steps, guidance_scale=params.sampling.guidance_scale
            )
            timings[label] = round(time.perf_counter() - t0, 3)
        del served
        peak, rss = _rss_mb()
        at = {i: scores[i].fidelity for i in scored}
        row = {
            "k": k,
            "concept": concept.name,
            "reference": reference,
            "avg_forgetting": full and full["avg_forgetting"],
            "final_fidelity": full and full["final_fidelity"],
            "rcf_preservation": full and full["rcf_preservation"],
            "rcf_similarity": measured[-1].rcf_similarity,
            "confusion": full and full["confusion"],  # issue 32: the last row's mean (evaluation/confusion.py)
            "est_confusion": est["confusion"],
            "new_concept_fidelity": at[k - 1],
            **{("fidelity_first" if j == 1 else f"fidelity_{j}"): at.get(j - 1) for j in TRACKED},
            "est_avg_forgetting": est["avg_forgetting"],
            "est_final_fidelity": est["final_fidelity"],
            "est_protocol": "full" if plan is None else f"bounded ({len(picked)} of {k})",
            "train_s": round(train_s, 3),
            "eval_s": round(eval_s, 3),
            "eval_bounded_s": round(eval_bounded_s, 3),
            "load_s": round(load_s, 3),
            **timings,
            "bytes_added": added,
            "bytes_total": total,
            "peak_rss_mb": peak,
            "rss_mb": rss,
            "kd_prompts": len(json.loads((out / "training.json").read_text()).get("relevant_prompts", [])),
        }
        row["step_s"] = round(time.perf_counter() - t_step, 3)
        rows.append(row)
        if on_row is not None:
            on_row(rows)
        log(
            f"[{method_name}] k={k} {concept.name}: "
            f"forgetting {row['avg_forgetting'] if reference else float('nan'):.3f} "
            f"(est {row['est_avg_forgetting']:.3f}), train {train_s:.1f} s, eval {eval_s:.1f} s "
            f"(bounded {eval_bounded_s:.1f} s), "
            f"load {load_s:.2f} s, gen {timings['generate_s']:.2f}/{timings['generate_stacked_s']:.2f} s, "
            f"{len(scored)} of {k} concepts scored, rss {rss:.0f} MB"
        )
    return rows


def parse_order(text: str, n: int) -> list[int]:
    """ "1-15,20,19" -> [1, ..., 15, 20, 19]: positions in the n-concept sequence, each at most once."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    if not out or len(set(out)) != len(out) or not all(1 <= i <= n for i in out):
        raise ValueError(f"--order {text!r}: positions must be distinct and within 1..{n}")
    return out


def run(
    n: int,
    seed: int,
    methods: list[str],
    out_json: Path,
    base: Path,
    evaluator_dir: Path,
    work: Path,
    shots: int = 4,
    overrides: list[str] = (),
    log=print,
    reference_every: int = 1,
    stop_after: int | None = None,
    order: list[int] | None = None,
) -> dict:
    import shutil

    import torch

    from benchmarks.forgetting import apply_overrides
    from components.config import load_params
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.world.concepts import write_concepts

    params = apply_overrides(load_params(), overrides)
    params = dataclasses.replace(params, training=dataclasses.replace(params.training, seed=seed))
    torch.set_num_threads(params.runtime.threads)
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    dirs = write_concepts(work / "concepts", n=n, shots=shots, seed=seed)
    if order:  # a counterfactual of the same draw: these concepts (1-based positions), in this order
        dirs = [dirs[i - 1] for i in order]
    dirs = dirs[:stop_after]  # the first concepts of the same n-concept sequence (the draw depends on n)
    clip, dino = load_evaluator(evaluator_dir)
    report = {
        "command": f"lfsd benchmark scale --n {n} --seed {seed} --methods {','.join(methods)} --json {out_json}"
        + (f" --reference-every {reference_every}" if reference_every > 1 else "")
        + (f" --stop-after {stop_after}" if stop_after else "")
        + (f" --order {','.join(map(str, order))}" if order else "")
        + "".join(f" --set {o}" for o in overrides),
        "reference_every": reference_every,
        "machine": f"{platform.machine()}, torch threads {params.runtime.threads}",
        "base_bytes": _bytes(base),
        "n": n,
        "seed": seed,
        "shots": shots,
        "concepts": [d.name for d in dirs],
        "forgetting": dataclasses.asdict(params.forgetting),
        "training": dataclasses.asdict(params.training),
        "methods": {},
    }
    start = time.time()
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)

    def save(method: str, rows: list[dict]) -> None:  # after every step: a long run keeps what it has measured
        report["methods"][method] = {"steps": rows}
        report["wall_seconds"] = round(time.time() - start, 1)
        Path(out_json).write_text(json.dumps(report, indent=2))

    for method in methods:
        evaluator = ForgettingEvaluator(clip, dino, params.forgetting)
        run_method(
            method,
            dirs,
            params,
            base,
            evaluator,
            work / method,
            log=log,
            on_row=lambda rows, m=method: save(m, rows),
            reference_every=reference_every,
        )
    return report


def table(report: dict, every: int = 5) -> str:
    """A markdown table of a scale report: k = 1 and every `every`-th step (the reference steps)."""
    lines = [
        "| method | k | train s | eval s (run / bounded) | load s | generate s (folded / stacked) | KiB added | "
        "RSS MB | avg forgetting (full) | estimate (bounded) | concept 1 fidelity |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    for method, body in report["methods"].items():
        for r in body["steps"]:
            if r["k"] == 1 or r["k"] % every == 0:
                lines.append(
                    f"| {method} | {r['k']} | {r['train_s']:.1f} | {r['eval_s']:.1f} / {r['eval_bounded_s']:.1f} | "
                    f"{r['load_s']:.2f} | {r['generate_s']:.2f} / {r['generate_stacked_s']:.2f} | "
                    f"{r['bytes_added'] / 1024:.0f} | {r['rss_mb']:.0f} | {fmt(r['avg_forgetting'])} | "
                    f"{r['est_avg_forgetting']:.3f} | {fmt(r['fidelity_first'])} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m benchmarks.scale REPORT.json: the table docs/results.md shows
    import sys

    print(table(json.loads(Path(sys.argv[1]).read_text())))
