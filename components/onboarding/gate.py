"""The promotion gate: a new version may become `production` only if every bound in params.yaml holds."""

from __future__ import annotations

from dataclasses import dataclass

from components.config import GateConfig


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
    failed = tuple(f"{name} {value:.3f} not {op} {bound}" for name, value, op, bound in checks
                   if not (value <= bound if op == "<=" else value >= bound) or value != value)
    checked = ", ".join(f"{name} {value:.3f} {op} {bound}" for name, value, op, bound in checks)
    return GateDecision(not failed, failed, checked)
