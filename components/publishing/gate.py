"""The promotion gate: a new version may become `production` only if every bound in params.yaml holds
(`decide`), and the verdict applied to the registry (`apply_gate`: tags, model card, alias)."""

from __future__ import annotations

from dataclasses import dataclass

from components.config import GateConfig
from components.workspace.layout import Workspace

GATE_TAG = "lfsd.gate"
GATE_REASON_TAG = "lfsd.gate_reason"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]  # every failed bound (empty when passed)
    checked: str  # the bounds as checked, for the record

    def summary(self) -> str:
        return "passed: " + self.checked if self.passed else "failed: " + "; ".join(self.reasons)


def decide(current: dict, cfg: GateConfig) -> GateDecision:
    """`current`: avg_forgetting (sequence so far), rcf_similarity and new_concept_fidelity of this step."""
    checks = [
        ("avg_forgetting", current["avg_forgetting"], "<=", cfg.max_avg_forgetting),
        ("rcf_similarity", current["rcf_similarity"], ">=", cfg.min_rcf_similarity),
        ("new_concept_fidelity", current["new_concept_fidelity"], ">=", cfg.min_new_concept_fidelity),
    ]
    failed = tuple(
        f"{name} {value:.3f} not {op} {bound}"
        for name, value, op, bound in checks
        if not (value <= bound if op == "<=" else value >= bound) or value != value
    )
    checked = ", ".join(f"{name} {value:.3f} {op} {bound}" for name, value, op, bound in checks)
    return GateDecision(not failed, failed, checked)


def apply_gate(ws: Workspace, version: str, decision: GateDecision) -> str | None:
    """Pass: `production` moves to `version`. Fail: `production` stays; the version says why.
    Returns the production version afterwards."""
    from components.registry import PRODUCTION, get_alias_version, promote
    from components.registry.model_card import version_card
    from components.workspace.mlflow_store import client as workspace_client

    client = workspace_client(ws)
    name = ws.params.pipeline.model_name
    client.set_model_version_tag(name, version, GATE_TAG, "passed" if decision.passed else "failed")
    client.set_model_version_tag(name, version, GATE_REASON_TAG, decision.summary())
    client.update_model_version(name, version, description=version_card(client, name, version))
    if decision.passed:
        promote(name, version, reason=f"gate {decision.summary()}")
    return get_alias_version(name, PRODUCTION)
