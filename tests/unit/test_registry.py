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


def test_a_gate_pass_never_takes_production_off_a_migrated_chain_a_person_promoted(tmp_path):
    """After `lfsd promote` of a migrated chain's version (tag lfsd.chain), an onboarding on the old chain
    that passes the gate must not move production back to the old base by itself (a real sqlite registry)."""
    from mlflow import MlflowClient

    from components.publishing.gate import other_chain_in_production
    from components.registry import PRODUCTION

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    c = MlflowClient(uri, uri)
    c.create_registered_model("m")
    src = tmp_path / "model"
    src.mkdir()

    def version(tags: dict) -> str:
        return str(c.create_model_version("m", str(src), tags=tags).version)

    old1, new1, old2, new2 = version({}), version({"lfsd.chain": "s7"}), version({}), version({"lfsd.chain": "s7"})
    assert other_chain_in_production(c, "m", old1) is None  # nothing serves yet
    c.set_registered_model_alias("m", PRODUCTION, new1)  # a person promoted the migrated chain
    held = other_chain_in_production(c, "m", old2)
    assert held and "'s7'" in held and f"lfsd promote {old2}" in held
    assert other_chain_in_production(c, "m", new2) is None  # the same chain: the gate may move it
    c.set_registered_model_alias("m", PRODUCTION, old1)  # rolled back to the old base
    assert other_chain_in_production(c, "m", old2) is None
