"""A probe, not a pipeline step: can a short data-free repair bring the concepts learned after a removed
one back to the full chain's fidelity? (issue 14's kept-concept target, docs/results.md)

    python -m benchmarks.forget_repair_probe --concepts examples/concepts --forget 3 --seeds 0,1,2 \
        --json docs/figures/forget_repair_probe.json

Per seed, on the forget benchmark's chains (same sequence, same per-task seeds; trained here into `--work`
or reused): `removed` = the full chain without concept `--forget` (`Ledger.without`, what `lfsd forget`
serves). `repaired` = `removed` whose LATER tasks' LoRA and token rows are fitted for `--steps` steps to
the full chain's noise predictions on those later concepts' own prompts, at points of the full chain's
own DDIM trajectories, with the later concept's own references as ICGen context (dropped 30% of the time,
as in training). No photo of the erased concept and no prompt naming it is used; the teacher still holds
it, so the erased concept is scored too (a repair must not bring it back). Reported per seed: every kept
concept's fidelity (ICGen, the protocol's) for full, removed and repaired, and the erased concept's
(its token, no context) for full, removed, repaired and the base.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def _points(teacher, prompts: list[str], contexts, cfg, generator):
    """(x_t, t, prompt, context, eps) at every step of one DDIM run per prompt of the frozen full chain."""
    import torch

    from components.model.sampling import denoise

    b = teacher.bundle
    c, s = b.unet.config.in_channels, b.unet.config.sample_size
    noise = torch.randn(len(prompts), c, s, s, generator=generator)
    xs, ts, eps = [], [], []

    def record(t, x, e):
        xs.append(x.clone())
        ts.append(torch.full((len(prompts),), int(t)))
        eps.append(e.clone())

    with torch.no_grad():
        denoise(
            b, noise, prompts, contexts, steps=cfg.kd_teacher_steps, guidance_scale=cfg.guidance_scale, on_step=record
        )
    return torch.cat(xs), torch.cat(ts), prompts * len(xs), contexts.repeat(len(xs), 1, 1), torch.cat(eps)


def repair(student, teacher, later, cfg, steps: int, seed: int) -> list[float]:
    """Fit the later tasks' LoRA and token rows of `student` to `teacher` (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    from components.model.pipeline import encode_prompts
    from components.model.references import load_reference_folder

    b, gen = student.bundle, torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    b.requires_grad_(False)
    lora = [p for e in later for p in student.task_parameters(e.task)]
    for p in lora:
        p.requires_grad_(True)
    emb = b.text_encoder.get_input_embeddings().weight
    emb.requires_grad_(True)
    rows = torch.tensor([b.tokenizer.convert_tokens_to_ids(e.token) for e in later])
    mask = torch.zeros(emb.shape[0], 1)
    mask[rows] = 1.0
    emb.register_hook(lambda g: g * mask)
    opt = torch.optim.AdamW(
        [{"params": lora, "lr": cfg.lr}, {"params": [emb], "lr": cfg.token_lr, "weight_decay": 0.0}]
    )
    ctx = {}
    with torch.no_grad():
        for e in later:
            refs = load_reference_folder(Path(e.references), b.image_size, limit=3)
            ctx[e.name] = b.context_encoder.embed_references(refs[None], torch.ones(1, refs.shape[0]))
    zero = torch.zeros_like(next(iter(ctx.values())))
    prompts = [(t.format(f"{e.token} {e.class_word}"), e.name) for e in later for t in cfg.kd_templates]
    bank, losses = None, []
    for step in range(steps):
        if step % cfg.kd_refresh_every == 0:  # fresh teacher trajectories, ICGen context dropped 30% of the time
            picks = [prompts[i] for i in rng.integers(len(prompts), size=cfg.kd_trajectories)]
            contexts = torch.cat([zero if rng.random() < cfg.icgen_context_dropout else ctx[n] for _, n in picks])
            bank = _points(teacher, [p for p, _ in picks], contexts, cfg, gen)
        idx = torch.randint(len(bank[0]), (cfg.kd_batch_size,), generator=gen)
        x, t, ctx_b, target = bank[0][idx], bank[1][idx], bank[3][idx], bank[4][idx]
        text = encode_prompts(b.tokenizer, b.text_encoder, [bank[2][i] for i in idx.tolist()])
        eps = b.unet(x, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [ctx_b]}).sample
        loss = F.mse_loss(eps, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    b.requires_grad_(False)
    return losses


def run(
    concepts: Path, forget: int, seeds: list[int], steps: int, base: Path, evaluator_dir: Path, work: Path, log=print
) -> dict:
    from benchmarks.forget_concept import full_and_removed, setup
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel

    params, clip, dino, dirs = setup(concepts, evaluator_dir)
    start, rows = time.time(), []
    for seed in seeds:
        cfg = dataclasses.replace(params.training, method="lfs", seed=seed)
        full, erased, without = full_and_removed(params, base, dirs, seed, forget, work, log)
        removed = LifelongModel.from_ledger(without, base)
        repaired = LifelongModel.from_ledger(without, base)
        later = [e for e in repaired.ledger.entries if e.task > erased.task]
        t0 = time.time()
        losses = repair(repaired, full, later, cfg, steps, seed)
        repair_s = time.time() - t0
        repaired.eval()
        evaluator = ForgettingEvaluator(clip, dino, params.forgetting)
        bare = LifelongModel.from_base(base, "lfs").eval()
        models = (("full", full), ("removed", removed), ("repaired", repaired))
        erased_score = {
            label: evaluator.score_concept(m, erased, icgen=False)[0].fidelity for label, m in (*models, ("base", bare))
        }
        classes = list(dict.fromkeys(e.class_word for e in full.ledger.entries))
        evaluator.base_rcf_images(bare.bundle, classes)
        kept = {}
        for label, m in models:
            step = evaluator.score_step(m, icgen=True, rcf_classes=classes)
            kept[label] = {c.name: c.fidelity for c in step.concepts if c.name != erased.name}
            kept[label + "_rcf_similarity"] = step.rcf_similarity
        change = {
            label: {n: kept[label][n] - kept["full"][n] for n in kept["removed"]} for label in ("removed", "repaired")
        }
        row = {
            "seed": seed,
            "erased": erased.name,
            "later": [e.name for e in later],
            "repair_seconds": round(repair_s, 1),
            "repair_loss_first_last": [float(np.mean(losses[:10])), float(np.mean(losses[-10:]))],
            "erased_fidelity": erased_score,
            "kept_fidelity": kept,
            "kept_change": change,
            "max_abs_kept_change": {k: max(abs(v) for v in c.values()) for k, c in change.items()},
        }
        rows.append(row)
        log(
            f"seed {seed}: max |kept change| removed {row['max_abs_kept_change']['removed']:.3f}, repaired "
            f"{row['max_abs_kept_change']['repaired']:.3f}; erased "
            + ", ".join(f"{k} {v:.3f}" for k, v in erased_score.items())
        )
    return {
        "command": f"python -m benchmarks.forget_repair_probe --concepts {concepts} --forget {forget} "
        f"--seeds {','.join(map(str, seeds))} --steps {steps}",
        "rows": rows,
        "wall_seconds": round(time.time() - start, 1),
    }


def draw_noise(
    concepts: Path,
    forget: int,
    seeds: list[int],
    offsets: list[int],
    base: Path,
    evaluator_dir: Path,
    work: Path,
    log=print,
) -> dict:
    """The kept concepts' change (removed - full) re-drawn with shifted sample seeds (offset o: the seeds of
    concept j become those of tag j + 100 o, as benchmarks/eval_noise.py): how much of a 0.02-0.04 change
    is the draw. Same chains as `run` (reused from `work`)."""
    import components.evaluation.forgetting as protocol
    from benchmarks.forget_concept import full_and_removed, setup
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel

    params, clip, dino, dirs = setup(concepts, evaluator_dir)
    rows, original = [], protocol._seeds
    fixed_seeds = original
    try:
        for seed in seeds:
            full, erased, without = full_and_removed(params, base, dirs, seed, forget, work, log)
            removed = LifelongModel.from_ledger(without, base)
            classes = list(dict.fromkeys(e.class_word for e in full.ledger.entries))
            for offset in offsets:
                protocol._seeds = lambda tag, n, o=offset: fixed_seeds(tag + 100 * o, n)
                evaluator = ForgettingEvaluator(clip, dino, params.forgetting)
                evaluator.base_rcf_images(LifelongModel.from_base(base, "lfs").eval().bundle, classes)
                score = {
                    label: {
                        c.name: c.fidelity
                        for c in evaluator.score_step(m, icgen=True, rcf_classes=classes).concepts
                        if c.name != erased.name
                    }
                    for label, m in (("full", full), ("removed", removed))
                }
                change = {n: score["removed"][n] - score["full"][n] for n in score["removed"]}
                rows.append({"seed": seed, "offset": offset, "kept_change": change})
                log(f"seed {seed} offset {offset}: " + ", ".join(f"{n} {v:+.3f}" for n, v in change.items()))
    finally:
        protocol._seeds = original
    return {
        "command": f"python -m benchmarks.forget_repair_probe --concepts {concepts} --forget {forget} "
        f"--seeds {','.join(map(str, seeds))} --draw-offsets {','.join(map(str, offsets))}",
        "rows": rows,
    }


def main() -> None:
    from components.config import REPO_ROOT

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concepts", type=Path, default=REPO_ROOT / "examples" / "concepts")
    ap.add_argument("--forget", type=int, default=3, help="1-based position of the concept to remove")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=100, help="repair optimisation steps")
    ap.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "figures" / "forget_repair_probe.json")
    ap.add_argument("--base", type=Path, default=REPO_ROOT / "models" / "base")
    ap.add_argument("--evaluator", type=Path, default=REPO_ROOT / "models" / "evaluator")
    ap.add_argument("--work", type=Path, default=REPO_ROOT / "outputs" / "benchmark")
    ap.add_argument(
        "--draw-offsets",
        default="",
        help="instead of the repair: re-draw full and removed with these "
        "sample-seed offsets (the evaluation's own noise)",
    )
    a = ap.parse_args()
    if a.draw_offsets:
        report = draw_noise(
            a.concepts,
            a.forget,
            [int(s) for s in a.seeds.split(",")],
            [int(o) for o in a.draw_offsets.split(",")],
            a.base,
            a.evaluator,
            a.work,
        )
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {a.json}")
        return
    report = run(a.concepts, a.forget, [int(s) for s in a.seeds.split(",")], a.steps, a.base, a.evaluator, a.work)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {a.json} in {report['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
