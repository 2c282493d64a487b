"""Can sampling keep similar concepts apart? A paired probe on one trained chain (issue 32, docs/similar.md).

    python -m benchmarks.similar_guidance CHECKPOINT --variants base,noref,swap,contrast-1 --json OUT.json

CHECKPOINT is a task folder a `benchmarks.similar run --work W` left (W/15-name: theta_15 of the chain).
Every learned concept is drawn as the forgetting protocol draws it (its four prompts, `images_per_prompt`
each, the protocol's seeds, three of its references as ICGen context) and scored with the protocol's
fidelity and confusion; only the guidance differs between variants (g = `forgetting.guidance_scale`;
c: (prompt, context), u: ("", no context), n: the *nearest other* learned concept's prompt, nearest by the
cosine of the evaluator's reference vectors, the same background):

  base            u + g (c - u)                 what the protocol and serving do (reproduces the run's numbers)
  noref           the same without references   how much identity the text path carries alone
  swap            n + g (c - n)                 the nearest concept as the negative prompt
  contrast-H      u + g (c - u) + H (c - n)     an extra term away from the nearest concept (n: no context)
  ctxcontrast-H   the same, n with the concept's own context (isolates the token's difference)

Same checkpoint, prompts, seeds and references for every variant: the differences are the guidance's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _guided(variant: str, eps, g: float):
    """The guided prediction from the branches `_texts` ordered: (c, u) / (c, n) / (c, u, n)."""
    parts = eps.chunk(_branches(variant))
    if variant in ("base", "noref"):
        c, u = parts
        return u + g * (c - u)
    if variant == "swap":
        c, n = parts
        return n + g * (c - n)
    c, u, n = parts
    return u + g * (c - u) + float(variant.rsplit("-", 1)[1]) * (c - n)


def _branches(variant: str) -> int:
    return 2 if variant in ("base", "noref", "swap") else 3


def draw(bundle, variant: str, prompts, negatives, seeds, references, steps: int, g: float):
    """`components.model.sampling.generate` with the variant's guidance: images (B, 3, H, W) on the CPU."""
    import torch

    from components.model.pipeline import ddim_scheduler
    from components.model.sampling import context_embeddings, initial_latents

    b = len(prompts)
    texts = {
        "base": [""] * b,
        "noref": [""] * b,
        "swap": list(negatives),
    }.get(variant, [""] * b + list(negatives))
    with torch.no_grad(), bundle.autocast():
        ctx = context_embeddings(bundle, None if variant == "noref" else references, b, None)
        null = torch.zeros_like(ctx)
        contexts = [ctx, null] + (
            [ctx if variant.startswith("ctxcontrast") else null] if _branches(variant) == 3 else []
        )
        text = bundle.encode_prompts(list(prompts) + texts)
        context = torch.cat(contexts)
        scheduler = ddim_scheduler(bundle.scheduler.config)
        scheduler.set_timesteps(steps)
        x = initial_latents(bundle, seeds) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(torch.cat([x] * _branches(variant)), t)
            eps = bundle.unet(x_in, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [context]}).sample
            x = scheduler.step(_guided(variant, eps, g), t, x).prev_sample
        return bundle.decode_latents(x).float().cpu()


def probe(checkpoint: Path, variants: list[str], threads: int, log=print) -> dict:
    import torch

    from components.config import load_params
    from components.evaluation.confusion import concept_confusion, reference_vector
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator, _seeds, concept_prompts
    from components.lifelong import LifelongModel
    from components.model.references import load_reference_folder

    torch.set_num_threads(threads)
    fc = load_params().forgetting
    clip, dino = load_evaluator(REPO_ROOT / "models" / "evaluator")
    evaluator = ForgettingEvaluator(clip, dino, fc)
    model = LifelongModel.from_checkpoint(checkpoint, REPO_ROOT / "models" / "base", fold=True).eval()
    b, entries = model.bundle, model.ledger.entries
    refs = {e.name: evaluator._dino_references(e, b.image_size) for e in entries}
    vectors = torch.stack([reference_vector(refs[e.name]) for e in entries])
    near = (vectors @ vectors.T).fill_diagonal_(-2.0).argmax(1)
    nearest = {e.name: entries[int(near[i])] for i, e in enumerate(entries)}
    shown = {e.name: load_reference_folder(e.references, b.image_size, limit=64)[:3] for e in entries}  # as evaluated
    # the ICGen context each concept is drawn from (unit vectors): how far apart the model itself sees two concepts
    with torch.no_grad():
        ctx = {
            n: torch.nn.functional.normalize(b.context_encoder.embed_references(r[None]).float().flatten(), dim=0)
            for n, r in shown.items()
        }
    # each concept and its negative: their cosine to the evaluator (reference vectors) and in the context path
    pairs = {
        e.name: {
            "nearest": nearest[e.name].name,
            "evaluator_cosine": float(vectors[i] @ vectors[int(near[i])]),
            "context_cosine": float(ctx[e.name] @ ctx[nearest[e.name].name]),
        }
        for i, e in enumerate(entries)
    }
    report = {"checkpoint": str(checkpoint), "guidance_scale": fc.guidance_scale, "pairs": pairs, "variants": {}}
    for variant in variants:
        t0, embedded, fidelity = time.time(), {}, {}
        for e in entries:
            n, other = fc.images_per_prompt, nearest[e.name]
            prompts = [p for p in concept_prompts(e.token, e.class_word) for _ in range(n)]
            negatives = [p for p in concept_prompts(other.token, other.class_word) for _ in range(n)]
            context = shown[e.name].unsqueeze(0).expand(len(prompts), -1, -1, -1, -1) if fc.use_references else None
            images = draw(
                b, variant, prompts, negatives, _seeds(e.task, len(prompts)), context, fc.steps, fc.guidance_scale
            )
            embedded[e.name] = dino.embed_images(images)
            fidelity[e.name] = float((embedded[e.name] @ reference_vector(refs[e.name])).mean())
        confusion = concept_confusion(embedded, refs)
        k = len(entries)
        report["variants"][variant] = row = {
            "seconds": round(time.time() - t0, 1),
            "fidelity": sum(fidelity.values()) / k,
            "confusion": sum(c.confusion for c in confusion.values()) / k,
            "margin": sum(c.margin for c in confusion.values()) / k,
            "concept1_fidelity": fidelity[entries[0].name],
            "per_concept": {
                name: {
                    "fidelity": fidelity[name],
                    "confusion": confusion[name].confusion,
                    "negative": nearest[name].name,
                }
                for name in fidelity
            },
        }
        log(
            f"{variant}: fidelity {row['fidelity']:.4f}, confusion {row['confusion']:.4f}, margin {row['margin']:.4f}, "
            f"concept 1 {row['concept1_fidelity']:.4f} ({row['seconds']:.0f} s)"
        )
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--variants", default="base,noref,swap,contrast-1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    report = probe(args.checkpoint, args.variants.split(","), args.threads)
    report["command"] = f"python -m benchmarks.similar_guidance {args.checkpoint} --variants {args.variants}"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
