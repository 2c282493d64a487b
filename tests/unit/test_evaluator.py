import torch

from components.evaluation.embedder import WORD_INDEX, ClipAnalogue, DinoAnalogue, WorldEvaluator, tokenize
from components.evaluation.forgetting import sequence_metrics, StepEval, ConceptScore


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
