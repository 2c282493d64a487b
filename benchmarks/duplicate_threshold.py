"""Where `nearness.duplicate_within` can sit: how far a learned photo moves when it is re-encoded, against how
near two different photos come (issue 32 §3).

`lfsd onboard` refuses a concept when more than half of its shots are one learned concept's photos again:
the same file, or a signature (`nearness.thumbnails`: luma 8x8 and chroma 4x4 of the normalised shot) within
`nearness.duplicate_within` mean absolute difference (`components/evaluation/nearness.py`). For a pair (new
concept, learned concept) what decides is the **concept distance**: the smallest d such that more than half
of the new shots have a match within d among the learned concept's shots. Measured over the world's whole
unseen instance space (every concept `lfsd world concepts` can draw), 4 shots each:

- different objects: every ordered pair of distinct instances (the smallest distance bounds the threshold
  from above: any pair below it would be refused as a copy); also another view set of the same object
  (4 new shots of it): not a copy of the photos, so also above;
- the learned photos again: re-encoded as JPEG at the model's 32 px (quality 85 and 95) and from a larger
  export (96 px q85, 256 px q60), upscaled 3x and read back: the largest distance bounds it from below.

It also reports the old criterion, shot-embedding cosine (the evaluator's), to show why it was dropped: two
different objects of the same colours reach 0.993, above another view of one object.

    python -m benchmarks.duplicate_threshold --json docs/figures/duplicate_threshold.json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

SHOTS = 4


def reencoded(img: np.ndarray, size: int, export: int, quality: int | None) -> np.ndarray:
    """`img` exported at `export` px (bicubic), saved as JPEG at `quality` (None: not), read back at `size`."""
    from PIL import Image

    im = Image.fromarray(img)
    if export != im.width:
        im = im.resize((export, export), Image.BICUBIC)
    if quality is not None:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        im = Image.open(buf)
    return np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))


def concept_distance(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """(A, B) concept distances of A new concepts' signatures (A, S, D) to B learned concepts' (B, S, D)."""
    from components.evaluation.nearness import thumbnail_distance

    a, s, _ = new.shape
    b = old.shape[0]
    d = thumbnail_distance(new.flatten(0, 1), old.flatten(0, 1)).reshape(a, s, b, s)
    best = d.min(dim=3).values  # (A, S, B): each new shot's nearest among a learned concept's shots
    need = s // 2 + 1  # more than half of the shots
    return best.sort(dim=1).values[:, need - 1, :]


def _shot_cosine_score(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    a, s, e = new.shape
    cos = (new.reshape(a * s, e) @ old.reshape(-1, e).T).reshape(a, s, old.shape[0], s)
    return cos.max(dim=3).values.sort(dim=1, descending=True).values[:, s // 2, :]


def _embed(dino, images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    with torch.no_grad():
        return torch.cat([dino.embed_images(x[i : i + 512]) for i in range(0, len(x), 512)])


def _r(x) -> float:
    return round(float(x), 3)


def measure(evaluator_dir: Path, size: int, seed: int) -> dict:
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.nearness import thumbnails
    from components.world.concepts import render_shots
    from components.world.scenes import all_instances

    insts = [i for i in all_instances() if i.unseen]
    n = len(insts)
    shots = np.stack([im for k, inst in enumerate(insts) for im in render_shots(inst, SHOTS, seed + k)])
    views = np.stack([im for k, inst in enumerate(insts) for im in render_shots(inst, SHOTS, seed + 100_000 + k)])
    sig = thumbnails(shots).reshape(n, SHOTS, -1)

    diff = concept_distance(sig, sig)
    diff.fill_diagonal_(float("inf"))
    lo = torch.topk(diff.flatten(), 5, largest=False)
    view = concept_distance(thumbnails(views).reshape(n, SHOTS, -1), sig).diagonal()
    out: dict = {
        "command": "python -m benchmarks.duplicate_threshold " + " ".join(sys.argv[1:]),
        "instances": n,
        "shots": SHOTS,
        "signature": "luma 8x8 + chroma 4x4 (YCbCr), mean absolute difference 0-255",
        "different_objects": {
            "pairs": n * (n - 1),
            "min": _r(diff.min()),
            "below": {str(t): int((diff <= t).sum()) for t in (1.5, 2.0, 2.5)},
            "nearest": [
                {"new": insts[int(i) // n].key, "learned": insts[int(i) % n].key, "distance": _r(v)}
                for v, i in zip(lo.values, lo.indices, strict=True)
            ],
        },
        "another_view_of_the_object": {"min": _r(view.min()), "median": _r(view.median())},
        "the_photos_again": {},
    }
    for export, quality in ((32, 85), (32, 95), (96, 85), (256, 60), (96, None)):
        again = np.stack([reencoded(im, size, export, quality) for im in shots])
        d = concept_distance(thumbnails(again).reshape(n, SHOTS, -1), sig).diagonal()
        name = f"{export}px " + (f"jpeg q{quality}" if quality else "png, read back")
        out["the_photos_again"][name] = {"max": _r(d.max()), "median": _r(d.median())}

    _, dino = load_evaluator(evaluator_dir)
    emb = _embed(dino, shots).reshape(n, SHOTS, -1)
    cos = _shot_cosine_score(emb, emb)
    cos.fill_diagonal_(float("-inf"))
    view_cos = _shot_cosine_score(_embed(dino, views).reshape(n, SHOTS, -1), emb).diagonal()
    out["old_criterion_shot_cosine"] = {
        "different_objects_max": _r(cos.max()),
        "different_objects_at_or_above_0.9": int((cos >= 0.9).sum()),
        "another_view_min": _r(view_cos.min()),
    }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--evaluator", type=Path, default=Path("models/evaluator"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from components.config import load_params

    out = measure(args.evaluator, load_params().model.image_size, args.seed)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
