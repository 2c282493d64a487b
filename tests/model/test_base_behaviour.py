"""Behaviour of the committed base and evaluator (minimum functionality, direction).

Small versions of the `lfsd evaluate-base` measurements, on seeds of their own, with floors well below
the measured figures in docs/results.md, so they fail on a broken model rather than on noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import REPO

BASE, EVALUATOR = REPO / "models" / "base", REPO / "models" / "evaluator"


@pytest.fixture(scope="module")
def base():
    from components.model.pipeline import load

    return load(BASE)


@pytest.fixture(scope="module")
def evaluator():
    from components.evaluation.embedder import load_evaluator

    return load_evaluator(EVALUATOR)


def test_evaluator_reads_class_and_colour_of_fresh_world_images(evaluator):
    from components.evaluation.base_quality import evaluator_figures

    clip, dino = evaluator
    figures = evaluator_figures(clip, dino, np.random.default_rng(424242), n_images=128, n_instances=16)
    assert figures["class_acc"] > 0.85 and figures["color_acc"] > 0.85
    assert figures["instance_retrieval"] > 0.75


def test_base_draws_the_prompted_colour_and_class(base, evaluator):
    from components.evaluation.base_quality import zero_shot
    from components.model.sampling import generate

    prompts = [
        "a red circle on a white background",
        "a blue square on a black background",
        "a yellow heart on a gray background",
        "a green cross on a brown background",
    ]
    images = generate(base, [p for p in prompts for _ in range(2)], list(range(8)), steps=20)
    classes, colours = zero_shot(evaluator[0], images)
    want = [p.split()[2] for p in prompts for _ in range(2)], [p.split()[1] for p in prompts for _ in range(2)]
    assert np.mean([c == w for c, w in zip(classes, want[0])]) >= 0.5
    assert np.mean([c == w for c, w in zip(colours, want[1])]) >= 0.5


def test_context_pulls_samples_towards_the_reference_instance(base, evaluator):
    from components.model.pixels import to_tensor
    from components.model.sampling import generate
    from components.world.scenes import render_view, sample_instance

    dino = evaluator[1]
    rng = np.random.default_rng(777)
    gains = []
    for _ in range(3):
        inst = sample_instance(rng, unseen=True)
        views = to_tensor(np.stack([render_view(inst, rng)[0] for _ in range(6)]))
        prompt = [f"a {inst.cls} on a white background"] * 2
        with_ctx = generate(base, prompt, [1, 2], references=views[None, :3].expand(2, -1, -1, -1, -1), steps=20)
        without = generate(base, prompt, [1, 2], steps=20)
        target = torch.nn.functional.normalize(dino.embed_images(views[3:]).mean(0), dim=-1)
        gains.append(
            float((dino.embed_images(with_ctx) @ target).mean() - (dino.embed_images(without) @ target).mean())
        )
    assert np.mean(gains) > 0.05


def test_cli_generate_writes_a_png_grid(tmp_path):
    from typer.testing import CliRunner

    from components.cli import app

    out = tmp_path / "grid.png"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "a red star on a white background",
            "--n",
            "2",
            "--out",
            str(out),
            "--steps",
            "5",
            "--model",
            str(BASE),
        ],
    )
    assert result.exit_code == 0, result.output
    from PIL import Image

    img = Image.open(out)
    assert img.size[0] > 64 and img.mode == "RGB"
