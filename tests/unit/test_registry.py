"""The model card and the promotion diff, rendered from plain values (the registry round trip is in
tests/integration/test_pipeline.py)."""

from __future__ import annotations

from components.registry.model_card import CardConcept, concepts_of, concepts_tag, render_card

CONCEPTS = [CardConcept(1, "byruri", "<byruri>", "cross"), CardConcept(2, "xubyzo", "<xubyzo>", "ring")]
TAGS = {"lfsd.gate": "passed", "lfsd.gate_reason": "passed: avg_forgetting 0.010 <= 0.1, rcf_similarity 0.900 >= 0.5",
        "lfsd.dataset_dvc_md5": "d" * 32 + ".dir", "lfsd.checkpoint_dvc_md5": "c" * 32 + ".dir",
        "lfsd.git_commit": "a" * 40, "lfsd.method": "lfs"}


def test_card_lists_every_concept_the_gate_and_the_lineage():
    card = render_card("lfs-diffusion", "2", CONCEPTS, {"avg_forgetting": 0.01, "new_concept_fidelity": 0.8}, TAGS, "r1")
    assert card.startswith("### lfs-diffusion v2: adds `xubyzo` (ring)")
    assert "| 01 | byruri | `<byruri>` | cross |" in card and "| 02 | xubyzo | `<xubyzo>` | ring |" in card
    assert "**Gate: passed**: avg_forgetting 0.010 <= 0.1, rcf_similarity 0.900 >= 0.5" in card
    assert "| avg_forgetting | 0.010 |" in card and "git_commit `" + "a" * 40 in card
    assert "--model models:/lfs-diffusion/2 --concept xubyzo" in card


def test_card_before_the_gate_says_so():
    tags = {k: v for k, v in TAGS.items() if not k.startswith("lfsd.gate")}
    assert "**Gate: not decided yet**" in render_card("m", "1", CONCEPTS[:1], {}, tags, "r")


def test_concepts_round_trip_through_their_tag():
    assert concepts_of({"lfsd.card_concepts": concepts_tag(CONCEPTS)}) == CONCEPTS
    assert concepts_of({}) == []
