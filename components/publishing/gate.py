"""The promotion gate: a new version may become `production` only if every bound in params.yaml holds
(`decide`), and the verdict applied to the registry (`apply_gate`: tags, model card, alias)."""

from __future__ import annotations

from dataclasses import dataclass

from components.config import GateConfig
from components.workspace.layout import Workspace

GATE_TAG = "lfsd.gate"
GATE_REASON_TAG = "lfsd.gate_reason"
HELD_TAG = "lfsd.not_promoted"  # a passing version the gate left unpromoted, and why


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]  # every failed bound (empty when passed)
    checked: str  # the bounds as checked, for the record

    def summary(self) -> str:
        return "passed: " + self.checked if self.passed else "failed: " + "; ".join(self.reasons)


def decide(current: dict, cfg: GateConfig) -> GateDecision:
    """`current`: avg_forgetting (sequence so far), rcf_similarity, new_concept_fidelity and confusion of this
    step. A NaN fails its bound, except confusion's: NaN (or no value) there means a step scored before
    confusion was measured (`evaluation/confusion.py`; with one concept learned it is 0)."""
    checks = [
        ("avg_forgetting", current["avg_forgetting"], "<=", cfg.max_avg_forgetting),
        ("rcf_similarity", current["rcf_similarity"], ">=", cfg.min_rcf_similarity),
        ("new_concept_fidelity", current["new_concept_fidelity"], ">=", cfg.min_new_concept_fidelity),
    ]
    confusion = current.get("confusion", float("nan"))
    if confusion == confusion:
        checks.append(("confusion", confusion, "<=", cfg.max_confusion))
    failed = tuple(
        f"{name} {value:.3f} not {op} {bound}"
        for name, value, op, bound in checks
        if not (value <= bound if op == "<=" else value >= bound) or value != value
    )
    checked = ", ".join(f"{name} {value:.3f} {op} {bound}" for name, value, op, bound in checks)
    return GateDecision(not failed, failed, checked)


def other_chain_in_production(client, name: str, version: str) -> str | None:
    """Why a passing `version` must not take `production` by itself: production serves a version of another
    chain (a migration's, tag `lfsd.chain`, promoted by a person). Moving it back to this chain's base on a
    gate pass would silently undo that promotion. None when both are on the same chain (or nothing serves)."""
    from components.registry import PRODUCTION, get_alias_version
    from components.workspace.side_chain import CHAIN_TAG

    serving = get_alias_version(name, PRODUCTION, client=client)
    if serving is None:
        return None
    theirs = (client.get_model_version(name, serving).tags or {}).get(CHAIN_TAG, "")
    mine = (client.get_model_version(name, version).tags or {}).get(CHAIN_TAG, "")
    if theirs == mine:
        return None
    return (
        f"production (version {serving}) serves the chain {theirs or 'on models/base'!r}, this version is on "
        f"{mine or 'the chain on models/base'}: a person decides (`lfsd promote {version}`)"
    )


def apply_gate(ws: Workspace, version: str, decision: GateDecision, *, held: str | None = None) -> str | None:
    """Pass: `production` moves to `version`, unless `held` says why not (`other_chain_in_production`; then
    the version carries it in `lfsd.not_promoted`). Fail: `production` stays; the version says why.
    Returns the production version afterwards."""
    from components.registry import PRODUCTION, get_alias_version, promote
    from components.registry.model_card import version_card
    from components.workspace.mlflow_store import client as workspace_client

    client = workspace_client(ws)
    name = ws.params.pipeline.model_name
    client.set_model_version_tag(name, version, GATE_TAG, "passed" if decision.passed else "failed")
    client.set_model_version_tag(name, version, GATE_REASON_TAG, decision.summary())
    client.update_model_version(name, version, description=version_card(client, name, version))
    if decision.passed and held:
        client.set_model_version_tag(name, version, HELD_TAG, held)
    elif decision.passed:
        promote(name, version, reason=f"gate {decision.summary()}")
    return get_alias_version(name, PRODUCTION)
