"""Concept confusion (issue 32 §2): on synthetic embeddings its extremes and its sign, and in the
forgetting protocol the same numbers from the same embeddings that fidelity uses."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from components.evaluation.confusion import concept_confusion, reference_vector
from components.evaluation.forgetting import ConceptScore, StepEval, sequence_metrics


def _cloud(axis: int, n: int, dim: int = 8, spread: float = 0.1, seed: int = 0) -> torch.Tensor:
    """n unit vectors scattered around basis vector `axis`."""
    g = torch.Generator().manual_seed(seed * 100 + axis)
    x = torch.nn.functional.one_hot(torch.tensor(axis), dim).float() + spread * torch.randn(n, dim, generator=g)
    return torch.nn.functional.normalize(x, dim=-1)


def test_samples_on_another_concepts_references_are_fully_confused():
    refs = {"a": _cloud(0, 6), "b": _cloud(1, 6), "c": _cloud(2, 6)}
    samples = {"a": _cloud(0, 16, seed=1), "b": _cloud(0, 16, seed=2)}  # b's samples sit on a's references
    out = concept_confusion(samples, refs)
    assert out["b"].confusion == 1.0 and out["b"].margin < -0.5 and out["b"].nearest == "a"
    assert out["a"].confusion == 0.0 and out["a"].margin > 0.5 and out["a"].nearest == "b"


def test_well_separated_concepts_have_no_confusion_and_a_positive_margin():
    refs = {n: _cloud(i, 6) for i, n in enumerate("abcd")}
    out = concept_confusion({n: _cloud(i, 16, seed=3) for i, n in enumerate("abcd")}, refs)
    assert all(x.confusion == 0.0 and x.margin > 0.5 for x in out.values())


def test_confusion_is_the_share_of_samples_and_the_margin_is_continuous():
    refs = {"a": _cloud(0, 6), "b": _cloud(1, 6)}
    half = torch.cat([_cloud(0, 5, seed=4), _cloud(1, 5, seed=5)])  # half on a, half on b
    assert concept_confusion({"a": half}, refs)["a"].confusion == pytest.approx(0.5)
    # moving a's samples from its own axis toward b's lowers the margin steadily and flips its sign
    margins = []
    for t in (0.0, 0.3, 0.45, 0.55, 0.7, 1.0):
        x = torch.nn.functional.normalize(
            (1 - t) * reference_vector(refs["a"]) + t * reference_vector(refs["b"]), dim=-1
        )
        margins.append(concept_confusion({"a": x[None]}, refs)["a"].margin)
    assert margins == sorted(margins, reverse=True) and margins[2] > 0 > margins[3]


def test_one_learned_concept_has_no_confusion_and_no_margin_and_missing_references_are_refused():
    one = concept_confusion({"a": _cloud(0, 4)}, {"a": _cloud(0, 4)})["a"]
    assert one.confusion == 0.0 and math.isnan(one.margin) and one.nearest is None
    with pytest.raises(KeyError, match="every learned concept"):
        concept_confusion({"z": _cloud(0, 4)}, {"a": _cloud(0, 4)})


def test_sequence_metrics_average_the_last_rows_measured_confusion():
    def score(name, conf, margin):
        return ConceptScore(name, 0.9, 0.5, 0.3, confusion=conf, margin=margin)

    steps = [
        StepEval(1, [score("a", 0.0, math.nan)], 1.0, 0.9),
        StepEval(2, [score("a", 0.5, -0.1), score("b", 0.0, 0.3)], 1.0, 0.9),
    ]
    m = sequence_metrics(steps)
    assert m["confusion"] == pytest.approx(0.25) and m["margin"] == pytest.approx(0.1)
    old = sequence_metrics([StepEval(1, [ConceptScore("a", 0.9, 0.5, 0.3)], 1.0, 0.9)])  # records from before
    assert math.isnan(old["confusion"]) and math.isnan(old["margin"])


def test_the_forgetting_protocol_measures_confusion_from_fidelitys_own_embeddings(params, tiny_base_dir, tmp_path):
    """Two ledger entries (no training: the base draws them from their tokens as plain text), one scored
    per step like the bounded protocol: its confusion is against both concepts' references, and its margin
    is its fidelity minus its samples' mean best cosine to the other concept's reference vector."""
    from components.evaluation.embedder import ClipAnalogue, DinoAnalogue, WorldEvaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel
    from components.lifelong.ledger import LedgerEntry
    from components.model.references import load_reference_folder
    from components.world.concepts import write_concepts

    folders = write_concepts(tmp_path / "c", n=2, shots=3, seed=5)
    net = WorldEvaluator().eval()
    dino = DinoAnalogue(net)
    cfg = dataclasses.replace(params.forgetting, images_per_prompt=1, rcf_seeds=1, steps=2)
    evaluator = ForgettingEvaluator(ClipAnalogue(net), dino, cfg)
    model = LifelongModel.from_base(tiny_base_dir, "finetune").eval()
    names = ["kamizo", "rutelo"]
    for i, (name, folder) in enumerate(zip(names, folders, strict=True)):
        model.ledger.entries.append(LedgerEntry(i + 1, name, "star", f"<{name}>", str(folder), ""))
    only = evaluator.score_step(model, icgen=False, rcf_classes=[], only=[1])
    (score,) = only.concepts
    size = model.bundle.image_size
    emb = dino.embed_images(only.samples["rutelo"])
    refs = [reference_vector(dino.embed_images(load_reference_folder(f, size, limit=64))) for f in folders]
    own, other = emb @ refs[1], emb @ refs[0]
    assert score.fidelity == pytest.approx(float(own.mean()), abs=1e-6)
    assert score.margin == pytest.approx(float((own - other).mean()), abs=1e-6)
    assert score.confusion == pytest.approx(float((other > own).float().mean())) and score.nearest == "kamizo"
    full = evaluator.score_step(model, icgen=False, rcf_classes=[])
    assert [c.name for c in full.concepts] == names and full.concepts[1] == score  # same seeds, same numbers


def test_reference_embeddings_are_reused_until_the_folder_changes(params, tmp_path):
    """The protocol embeds every learned concept's references at every step; it keeps them per folder
    contents, so a folder rewritten in place (a benchmark's work folder) is embedded again."""
    import os

    from components.evaluation.embedder import ClipAnalogue, DinoAnalogue, WorldEvaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong.ledger import LedgerEntry
    from components.world.concepts import write_concepts

    net = WorldEvaluator().eval()
    calls = []

    class Counting(DinoAnalogue):
        def embed_images(self, images):
            calls.append(len(images))
            return super().embed_images(images)

    evaluator = ForgettingEvaluator(ClipAnalogue(net), Counting(net), params.forgetting)
    (folder,) = write_concepts(tmp_path / "c", n=1, shots=3, seed=5)
    entry = LedgerEntry(1, "kamizo", "star", "<kamizo>", str(folder), "")
    first = evaluator._dino_references(entry, 32)
    assert torch.equal(evaluator._dino_references(entry, 32), first) and calls == [3]
    (other,) = write_concepts(tmp_path / "d", n=1, shots=3, seed=6)
    os.replace(other / "00.png", folder / "00.png")
    assert not torch.equal(evaluator._dino_references(entry, 32), first) and calls == [3, 3]
