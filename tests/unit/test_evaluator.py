import pytest
import torch

from components.evaluation.embedder import WORD_INDEX, ClipAnalogue, DinoAnalogue, WorldEvaluator, tokenize
from components.evaluation.forgetting import ConceptScore, StepEval, sequence_metrics


def test_placeholder_tokens_and_unknown_words_map_to_unk():
    ids = tokenize("a <kamizo> star on a white background")
    assert ids[1] == WORD_INDEX["<unk>"]
    assert WORD_INDEX["star"] in ids and WORD_INDEX["white"] in ids


def test_embedders_return_unit_vectors_and_round_trip(tmp_path):
    net = WorldEvaluator(embed_dim=16).eval()
    clip, dino = ClipAnalogue(net), DinoAnalogue(net)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    for e in (clip.embed_images(x), clip.embed_texts(["a red star", "a", "a blue object"]), dino.embed_images(x)):
        assert e.shape == (3, 16)
        assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    net.save(tmp_path / "ev")
    again = WorldEvaluator.load(tmp_path / "ev")
    assert torch.allclose(DinoAnalogue(again).embed_images(x), dino.embed_images(x), atol=1e-6)


def _step(task, fids):
    return StepEval(task, [ConceptScore(f"c{j}", f, 0.0, 0.0) for j, f in enumerate(fids)], 1.0, 0.9)


def test_sequence_metrics_follow_the_protocol_definitions():
    steps = [_step(1, [0.8]), _step(2, [0.6, 0.9]), _step(3, [0.5, 0.7, 0.95])]
    m = sequence_metrics(steps)
    assert abs(m["final_fidelity"] - (0.5 + 0.7 + 0.95) / 3) < 1e-9
    # forgetting: c0 max(0.8, 0.6) - 0.5 = 0.3; c1 max(0.9) - 0.7 = 0.2
    assert abs(m["avg_forgetting"] - 0.25) < 1e-9
    # bwt: (0.5 - 0.8 + 0.7 - 0.9) / 2
    assert abs(m["bwt"] - (-0.25)) < 1e-9
    assert abs(m["new_concept_fidelity"] - (0.8 + 0.9 + 0.95) / 3) < 1e-9
    assert abs(m["rcf_preservation"] - 0.9) < 1e-9


def test_the_bounded_plan_is_fixed_size_round_robin_over_every_concept_and_full_on_schedule():
    from components.evaluation.bounded import last_scored_steps, step_plan

    assert step_plan([0, 1, 2, 3], 4, 10) is None  # up to sample_size + 1 concepts: always the full row
    assert step_plan(list(range(19)), 4, 10) is None  # the 20th concept's step: on the full_every schedule
    assert step_plan(list(range(29)), 0, 10) is None  # sample_size 0: the full protocol
    records: list[dict] = []  # what the steps scored, step by step, as forgetting.json holds them
    for n in range(1, 51):
        names = [f"c{j}" for j in range(n)]
        plan = step_plan(last_scored_steps(names[:-1], records), 4, 0)
        scored = range(n) if plan is None else plan
        if n > 5:
            assert len(plan) == 5 and plan[-1] == n - 1  # 4 earlier + the new one, whatever n
        records.append({"concepts": [{"name": names[j]} for j in scored]})
    for j in range(49):  # every concept is scored again within ceil((n - 1) / 4) steps of the last time
        hits = [i for i, r in enumerate(records) if {"name": f"c{j}"} in r["concepts"]]
        gaps = [b - a for a, b in zip(hits, hits[1:] + [len(records)])]
        assert max(gaps) <= 13, (j, hits)


def test_a_partial_last_row_gives_the_mean_over_what_it_scored_and_a_full_row_the_exact_values():
    from components.evaluation.bounded import last_row_forgetting, needs_full_row

    full = [_step(1, [0.8]), _step(2, [0.6, 0.9]), _step(3, [0.5, 0.7, 0.95])]
    partial = full[:2] + [StepEval(3, [ConceptScore("c1", 0.7, 0, 0), ConceptScore("c2", 0.95, 0, 0)], 1.0, 0.9)]
    m = sequence_metrics(partial)
    assert m["concepts"] == ["c0", "c1", "c2"] and m["matrix"][2][0] != m["matrix"][2][0]  # c0 unscored: NaN
    assert abs(m["avg_forgetting"] - 0.2) < 1e-9  # c1 only: 0.9 - 0.7
    assert abs(m["final_fidelity"] - (0.7 + 0.95) / 2) < 1e-9
    assert last_row_forgetting(m["matrix"]) == [0.9 - 0.7]
    assert [round(f, 9) for f in last_row_forgetting(sequence_metrics(full)["matrix"])] == [0.3, 0.2]
    # the gate's doubt: clearly inside the bound -> no; a sampled concept over it, or a wide sample -> yes
    assert not needs_full_row([0.01, 0.02, 0.0, 0.015], 0.15)
    assert needs_full_row([0.01, 0.02, 0.0, 0.2], 0.15)
    assert needs_full_row([0.14, -0.1, 0.14, -0.1], 0.05)


@pytest.mark.parametrize("k", [3, 60])
def test_the_heatmap_has_a_bounded_size_at_any_k(k, tmp_path):
    """Sized per cell, the fidelity heatmap grew as k^2 (a 1.2 MB PNG and +397 MB of RSS at k = 50): its
    picture is now at most 12 x 10 inches at 100 dpi, whatever k is, and a small chain's stays small."""
    from PIL import Image

    from components.evaluation.plots import save_heatmap

    matrix = [[(i * 7 + j) % 10 / 10 if j <= i else float("nan") for j in range(k)] for i in range(k)]
    out = save_heatmap(matrix, [f"c{j:03d}" for j in range(k)], "t", tmp_path / "h.png")
    w, h = Image.open(out).size
    assert w <= 1200 and h <= 1000
    assert (w, h) == (1200, 1000) if k == 60 else w < 400
