"""`lfsd evaluate-base`: is the evaluator good, and is the base good, on data drawn fresh from a seed?

- evaluator: zero-shot class / colour accuracy on fresh generic scenes; instance retrieval among views
  of unseen instances;
- base text-to-image: every class x colour prompt, samples classified by the evaluator;
- base in-context: 3 views of an unseen instance as context; is the sample closer (instance space) to
  that instance's held-out views than to a class-mate's views? Against the same prompt with no context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from components.evaluation.embedder import ClipAnalogue, DinoAnalogue, load_evaluator
from components.model.pixels import to_tensor
from components.world.scenes import instance_caption, render_view, sample_instance, sample_scene
from components.world.vocabulary import BACKGROUNDS, CLASSES, COLOURS, caption


def zero_shot(clip: ClipAnalogue, images: torch.Tensor) -> tuple[list[str], list[str]]:
    """Predicted class and colour of each image, by nearest text embedding."""
    img = clip.embed_images(images)
    cls_txt = clip.embed_texts([f"a {c}" for c in CLASSES])
    col_txt = clip.embed_texts([f"a {c} object" for c in COLOURS])
    colours = list(COLOURS)
    return [CLASSES[i] for i in (img @ cls_txt.T).argmax(1)], [colours[i] for i in (img @ col_txt.T).argmax(1)]


def evaluator_figures(
    clip: ClipAnalogue, dino: DinoAnalogue, rng: np.random.Generator, n_images: int, n_instances: int
) -> dict:
    scenes = [sample_scene(rng) for _ in range(n_images)]
    pred_cls, pred_col = zero_shot(clip, to_tensor(np.stack([s.image for s in scenes])))
    class_acc = np.mean([p == s.cls for p, s in zip(pred_cls, scenes)])
    color_acc = np.mean([p == s.colour for p, s in zip(pred_col, scenes)])
    views, labels = [], []
    for i in range(n_instances):
        inst = sample_instance(rng, unseen=True)
        for _ in range(4):
            views.append(render_view(inst, rng)[0])
            labels.append(i)
    emb = dino.embed_images(to_tensor(np.stack(views)))
    sim = emb @ emb.T
    sim.fill_diagonal_(-2.0)
    labels_t = torch.tensor(labels)
    retrieval = (labels_t[sim.argmax(1)] == labels_t).float().mean().item()
    return {"class_acc": float(class_acc), "color_acc": float(color_acc), "instance_retrieval": float(retrieval)}


def text_to_image_figures(
    bundle, clip: ClipAnalogue, rng: np.random.Generator, per_prompt: int, steps: int, guidance: float
) -> dict:
    from components.model.sampling import generate

    prompts, want_cls, want_col = [], [], []
    backgrounds = list(BACKGROUNDS)
    for cls in CLASSES:
        for col in COLOURS:
            for _ in range(per_prompt):
                prompts.append(caption(cls, col, backgrounds[rng.integers(len(backgrounds))]))
                want_cls.append(cls)
                want_col.append(col)
    seeds = [int(s) for s in rng.integers(2**31, size=len(prompts))]
    images = torch.cat(
        [
            generate(bundle, prompts[i : i + 64], seeds[i : i + 64], steps=steps, guidance_scale=guidance)
            for i in range(0, len(prompts), 64)
        ]
    )
    pred_cls, pred_col = zero_shot(clip, images)
    return {
        "base_class_acc": float(np.mean([p == w for p, w in zip(pred_cls, want_cls)])),
        "base_color_acc": float(np.mean([p == w for p, w in zip(pred_col, want_col)])),
    }


def icgen_figures(
    bundle,
    dino: DinoAnalogue,
    rng: np.random.Generator,
    n_instances: int,
    n_distractors: int,
    steps: int,
    guidance: float,
) -> dict:
    """Pairwise win rates: (sample, class-mate) pairs where the sample is closer to its own instance."""
    from components.model.sampling import generate

    prompts, refs, own_views, mates_views = [], [], [], []
    for _ in range(n_instances):
        inst = sample_instance(rng, unseen=True)
        views = [render_view(inst, rng) for _ in range(6)]
        refs.append(to_tensor(np.stack([v for v, _ in views[:3]])))
        own_views.append(to_tensor(np.stack([v for v, _ in views[3:]])))
        mates = []
        while len(mates) < n_distractors:
            other = sample_instance(rng, unseen=True, cls=inst.cls)
            if other.key != inst.key and other.key not in {m.key for m in mates}:
                mates.append(other)
        mates_views.append([to_tensor(np.stack([render_view(m, rng)[0] for _ in range(3)])) for m in mates])
        prompts.append(instance_caption(inst, list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]))
    seeds = [int(s) for s in rng.integers(2**31, size=len(prompts))]
    with_ctx = generate(bundle, prompts, seeds, references=torch.stack(refs), steps=steps, guidance_scale=guidance)
    no_ctx = generate(bundle, prompts, seeds, steps=steps, guidance_scale=guidance)

    def win_rates(samples: torch.Tensor) -> tuple[float, float]:
        emb = dino.embed_images(samples)
        pair_wins, all_wins = [], []
        for i in range(len(prompts)):
            own = (dino.embed_images(own_views[i]) @ emb[i]).mean()
            mates = [(dino.embed_images(v) @ emb[i]).mean() for v in mates_views[i]]
            pair_wins += [bool(own > m) for m in mates]
            all_wins.append(all(own > m for m in mates))
        return float(np.mean(pair_wins)), float(np.mean(all_wins))

    ctx_pair, ctx_all = win_rates(with_ctx)
    none_pair, none_all = win_rates(no_ctx)
    return {
        "icgen_win_rate": ctx_pair,
        "icgen_no_context_win_rate": none_pair,
        "icgen_win_rate_vs_all_classmates": ctx_all,
        "icgen_no_context_win_rate_vs_all_classmates": none_all,
    }


def evaluate_base(model_dir: Path, evaluator_dir: Path, seed: int) -> dict:
    from components.config import load_params
    from components.model.pipeline import load

    params = load_params()
    cfg, smp = params.evaluate_base, params.sampling
    torch.set_num_threads(params.runtime.threads)
    clip, dino = load_evaluator(evaluator_dir)
    bundle = load(model_dir)
    figures = {"seed": seed}
    figures |= evaluator_figures(
        clip, dino, np.random.default_rng([seed, 1]), cfg.world_images, cfg.retrieval_instances
    )
    figures |= text_to_image_figures(
        bundle, clip, np.random.default_rng([seed, 2]), cfg.samples_per_prompt, smp.steps, smp.guidance_scale
    )
    figures |= icgen_figures(
        bundle,
        dino,
        np.random.default_rng([seed, 3]),
        cfg.icgen_instances,
        cfg.icgen_distractors,
        smp.steps,
        smp.guidance_scale,
    )
    return figures
