"""The model card and the promotion diff, rendered from plain values (the registry round trip is in
tests/integration/test_pipeline.py)."""

from __future__ import annotations

from components.registry.model_card import CardConcept, concepts_of, concepts_tag, render_card

CONCEPTS = [CardConcept(1, "byruri", "<byruri>", "cross"), CardConcept(2, "xubyzo", "<xubyzo>", "ring")]
TAGS = {
    "lfsd.gate": "passed",
    "lfsd.gate_reason": "passed: avg_forgetting 0.010 <= 0.1, rcf_similarity 0.900 >= 0.5",
    "lfsd.dataset_dvc_md5": "d" * 32 + ".dir",
    "lfsd.checkpoint_dvc_md5": "c" * 32 + ".dir",
    "lfsd.git_commit": "a" * 40,
    "lfsd.method": "lfs",
}


def test_card_lists_every_concept_the_gate_and_the_lineage():
    card = render_card(
        "lfs-diffusion", "2", CONCEPTS, {"avg_forgetting": 0.01, "new_concept_fidelity": 0.8}, TAGS, "r1"
    )
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


def test_each_workspace_gets_its_own_store_in_one_process_and_a_users_uri_wins(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: that must not send the next workspace's runs
    to the first one's store, while a URI the user set still applies to every workspace."""
    import mlflow

    from components.registry.tracking import setup_tracking, tracking_uri_default

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LFSD_STATE_DIR", raising=False)
    try:
        setup_tracking(tmp_path / "a")
        assert (
            tracking_uri_default(tmp_path / "b")
            == f"sqlite:///{(tmp_path / 'b' / '.lfsd' / 'mlflow' / 'mlflow.db').resolve().as_posix()}"
        )
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
        assert tracking_uri_default(tmp_path / "b") == "http://127.0.0.1:5999"
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
