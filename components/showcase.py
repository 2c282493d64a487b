"""`python -m components.showcase`: what the foundation model can do, without the pipeline.

The base model
drawing world prompts, and drawing each example concept from its own references (In-Context
Generation) next to the same prompt without them.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import yaml

from components.config import REPO_ROOT, load_params

OUT = REPO_ROOT / "outputs" / "showcase"


def main() -> int:
    from components.model.pipeline import load
    from components.model.pixels import to_uint8
    from components.model.references import load_reference_folder
    from components.model.sampling import generate
    from components.visuals import save_grid

    start = time.time()
    params = load_params()
    torch.set_num_threads(params.runtime.threads)
    bundle = load(REPO_ROOT / "models" / "base")
    steps, guidance = params.sampling.steps, params.sampling.guidance_scale
    OUT.mkdir(parents=True, exist_ok=True)

    prompts = [
        "a red star on a white background",
        "a blue heart on a black background",
        "a small yellow circle on a gray background",
        "a green cross on a brown background",
    ]
    images = generate(
        bundle, [p for p in prompts for _ in range(4)], list(range(16)), steps=steps, guidance_scale=guidance
    )
    print(
        f"text-to-image grid ({', '.join(prompts)}): {save_grid(to_uint8(images), OUT / 'text_to_image.png', cols=4)}"
    )

    rows = []
    for folder in sorted((REPO_ROOT / "examples" / "concepts").iterdir()):
        meta = yaml.safe_load((folder / "concept.yaml").read_text())
        refs = load_reference_folder(folder, bundle.image_size)
        prompt = f"a {meta['class_word']} on a white background"
        seeds = list(range(4))
        with_ctx = generate(
            bundle,
            [prompt] * 4,
            seeds,
            references=refs[None].expand(4, -1, -1, -1, -1),
            steps=steps,
            guidance_scale=guidance,
        )
        without = generate(bundle, [prompt] * 4, seeds, steps=steps, guidance_scale=guidance)
        rows.append(np.concatenate([to_uint8(refs[:3]), to_uint8(with_ctx), to_uint8(without)]))
        print(f"  {folder.name}: '{prompt}' with its {len(refs)} references as context, and without")
    grid = save_grid(np.concatenate(rows), OUT / "in_context.png", cols=11)
    print(f"in-context grid (per row: 3 references | 4 samples with context | 4 without): {grid}")
    print(f"showcase finished in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
