"""Checks beside the stress runs of `similar.py` (issue 32): how confused the evaluator itself is on the real
objects (`floor`), what a confusion bound would have said step by step (`confusion_by_step`), and whether a
run's confusion comes from concepts learned badly or from what later tasks did to them (`why`)."""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _image_size() -> int:
    """The base's pixels per side, read from its configs as `ModelBundle.image_size` does (no model loaded)."""
    base = REPO_ROOT / "models" / "base"
    unet, vae = (json.loads((base / c / "config.json").read_text()) for c in ("unet", "vae"))
    return unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)


def floor(concepts: Path, views: int = 16, seed: int = 9000) -> dict:
    """The evaluator's own confusion: fresh renders of each concept's world instance (views no shot shows)
    scored against the shots' reference vectors, as generated samples are. A perfect generator would get
    this much confusion; what a method adds is what it shows above it."""
    import yaml
    from PIL import Image

    from components.evaluation.confusion import concept_confusion
    from components.evaluation.embedder import load_evaluator
    from components.model.references import load_reference_folder, reference_tensor
    from components.world.concepts import render_shots
    from components.world.scenes import all_instances

    _, dino = load_evaluator(REPO_ROOT / "models" / "evaluator")
    size = _image_size()
    by_key = {i.key: i for i in all_instances()}
    samples, refs = {}, {}
    for k, d in enumerate(sorted(p for p in Path(concepts).iterdir() if (p / "concept.yaml").is_file())):
        meta = yaml.safe_load((d / "concept.yaml").read_text())
        shots = render_shots(by_key[meta["world_instance"]], views, seed + k)
        samples[meta["name"]] = dino.embed_images(reference_tensor([Image.fromarray(a) for a in shots], size))
        refs[meta["name"]] = dino.embed_images(load_reference_folder(d, size, limit=64))
    out = concept_confusion(samples, refs)
    per = {n: {"confusion": c.confusion, "margin": c.margin, "nearest": c.nearest} for n, c in out.items()}
    return {
        "command": f"python -m benchmarks.similar floor --concepts {concepts}",
        "views": views,
        "confusion": sum(c["confusion"] for c in per.values()) / len(per),
        "margin": sum(c["margin"] for c in per.values()) / len(per),
        "concepts": per,
    }


def confusion_by_step(checkpoints: Path, threads: int = 1) -> list[dict]:
    """Every step of a finished run (`run`'s or `lfsd benchmark forgetting`'s task folders NN-name/, in order)
    scored in full: the mean confusion the pipeline's gate reads at that step (`sequence_metrics`), per step.
    What a confusion bound would have said along the way."""
    import torch

    from components.config import load_params
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator, sequence_metrics
    from components.lifelong import LifelongModel
    from components.training.methods import get_method

    torch.set_num_threads(threads)
    clip, dino = load_evaluator(REPO_ROOT / "models" / "evaluator")
    evaluator = ForgettingEvaluator(clip, dino, load_params().forgetting)
    out = []
    for k, folder in enumerate(sorted(p for p in Path(checkpoints).iterdir() if p.is_dir()), start=1):
        model = LifelongModel.from_checkpoint(folder, REPO_ROOT / "models" / "base")
        icgen = get_method(model.ledger.method).icgen and model.bundle.has_context_path
        step = evaluator.score_step(model, icgen=icgen, rcf_classes=[])
        mean = sequence_metrics([step])["confusion"]
        out.append(
            {"k": k, "checkpoint": folder.name, "confusion": mean, "worst": max(c.confusion for c in step.concepts)}
        )
        print(f"{folder.name}: confusion {mean:.3f} (worst concept {out[-1]['worst']:.3f})", flush=True)
    return out


def why(paths: list[Path]) -> str:
    """Per complete run: the correlation of each concept's fidelity and confusion at the end; how many concepts'
    confusion rose by >= 0.25 after the step that taught them, and of those how many lost >= 0.05 fidelity
    meanwhile (forgotten) or not (a later, nearer concept came to sit closer to samples that never changed)."""
    import numpy as np

    lines = ["| run | corr(fidelity, confusion) at the end | confusion rose >= 0.25 | of which lost >= 0.05 fidelity |"]
    lines.append("| --- | --- | --- | --- |")
    for p in sorted(paths):
        r = json.loads(Path(p).read_text())
        if "steps" not in r or not r["complete"]:
            continue
        end = r["steps"][-1]["scores"]
        fid, conf = [v["fidelity"] for v in end.values()], [v["confusion"] for v in end.values()]
        rose = [(s["scores"][s["concept"]], end[s["concept"]]) for s in r["steps"][:-1]]
        rose = [(a, e) for a, e in rose if e["confusion"] - a["confusion"] >= 0.25]
        lost = sum(a["fidelity"] - e["fidelity"] >= 0.05 for a, e in rose)
        lines.append(f"| {Path(p).stem} | {np.corrcoef(fid, conf)[0, 1]:.2f} | {len(rose)} of {len(end)} | {lost} |")
    return "\n".join(lines)


def nearness_vs_drops(paths: list[Path], warn_above: float, drop: float = 0.05) -> str:
    """Per complete run: at each step k >= 2, the nearness (reference-vector cosine, `evaluation.nearness`) of
    the concept just learned to concept 1, against concept 1's fidelity change at that step. How many steps
    dropped concept 1 by >= `drop`, how many the warning (nearness >= `warn_above`) flagged, how many of the
    flagged held a drop."""
    import yaml

    from components.evaluation.embedder import load_evaluator
    from components.evaluation.nearness import nearness_matrix
    from components.model.references import load_reference_folder

    _, dino = load_evaluator(REPO_ROOT / "models" / "evaluator")
    embedded: dict[Path, object] = {}
    lines = ["| run | steps | drops >= 0.05 | flagged | flagged holding a drop |", "| --- | --- | --- | --- | --- |"]
    for p in sorted(paths):
        r = json.loads(Path(p).read_text())
        if "steps" not in r or not r["complete"]:
            continue
        folder = Path(r["command"].split("--concepts ")[1].split()[0])
        folder = folder if folder.is_absolute() else REPO_ROOT / folder
        dirs = sorted(d for d in folder.iterdir() if (d / "concept.yaml").is_file())
        if folder not in embedded:
            embedded[folder] = nearness_matrix(
                [dino.embed_images(load_reference_folder(d, _image_size(), 64)) for d in dirs]
            )
        near = embedded[folder]
        first = yaml.safe_load((dirs[0] / "concept.yaml").read_text())["name"]
        fid = [s["scores"][first]["fidelity"] for s in r["steps"]]
        events = [(float(near[k, 0]), fid[k - 1] - fid[k]) for k in range(1, len(fid))]
        drops = sum(d >= drop for _, d in events)
        flagged = [d for n, d in events if n >= warn_above]
        held = sum(d >= drop for d in flagged)
        lines.append(f"| {Path(p).stem} | {len(events)} | {drops} | {len(flagged)} | {held} |")
    return "\n".join(lines)
