"""Two chains of the same concepts side by side (`lfsd migrate`): concept by concept, from each chain's
forgetting history (the step records of `forgetting.json`, the last row scored by the same protocol with
the same sample seeds for both), what a reviewer needs before moving `production` to another base.

Per concept: fidelity now (the last row's A[k][j]), forgetting (its best earlier score minus now, as
`forgetting.forgetting_at` defines it for one column; 0.0 for the concept learned last) and confusion (the
share of its samples nearer another learned concept; NaN where it was not measured). Per chain: RCF
similarity of the last step, RCF preservation (its mean over every step), mean fidelity and average
forgetting. Pure: numbers in, rows and text out.
"""

from __future__ import annotations

import math

CHAIN_ROW = "(chain)"
CARD_SECTION = "## Migration scorecard"  # the heading of the scorecard in the new version's model card
CONCEPT_METRICS = ("fidelity", "forgetting", "confusion")
CHAIN_METRICS = ("rcf_similarity", "rcf_preservation", "mean_fidelity", "avg_forgetting")


def concept_scores(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per concept of the last row: fidelity, forgetting and confusion, from one chain's step records."""
    last = records[-1]["concepts"]
    out = {}
    for c in last:
        earlier = [
            s["fidelity"]
            for r in records[:-1]
            for s in r["concepts"]
            if s["name"] == c["name"] and not math.isnan(s["fidelity"])
        ]
        forgetting = max(earlier) - c["fidelity"] if earlier else 0.0
        out[c["name"]] = {
            "fidelity": c["fidelity"],
            "forgetting": forgetting,
            "confusion": c.get("confusion", math.nan),
        }
    return out


def chain_scores(records: list[dict]) -> dict[str, float]:
    per = concept_scores(records)
    forgetting = [v["forgetting"] for name, v in per.items() if name != records[-1]["concepts"][-1]["name"]]
    return {
        "rcf_similarity": records[-1]["rcf_similarity"],
        "rcf_preservation": sum(r["rcf_similarity"] for r in records) / len(records),
        "mean_fidelity": sum(v["fidelity"] for v in per.values()) / len(per),
        "avg_forgetting": sum(forgetting) / len(forgetting) if forgetting else 0.0,
    }


def scorecard(old: list[dict], new: list[dict]) -> list[dict]:
    """Rows (concept, metric, old, new, delta) for every concept of the new chain, in its order, then the
    chain rows. A concept of the old chain the new one does not hold is not compared (erased concepts are
    in neither); one the old chain lacks is an error: the new chain learns only the old chain's concepts."""
    o, n = concept_scores(old), concept_scores(new)
    missing = [name for name in n if name not in o]
    if missing:
        raise ValueError(f"the new chain holds {missing}, which the old chain does not")
    rows = [_row(name, m, o[name][m], n[name][m]) for name in n for m in CONCEPT_METRICS]
    oc, nc = chain_scores(old), chain_scores(new)
    return rows + [_row(CHAIN_ROW, m, oc[m], nc[m]) for m in CHAIN_METRICS]


def _row(concept: str, metric: str, old: float, new: float) -> dict:
    return {"concept": concept, "metric": metric, "old": old, "new": new, "delta": new - old}


def columns(rows: list[dict]) -> dict[str, list]:
    """The rows as columns (what `mlflow.log_table` takes)."""
    return {k: [r[k] for r in rows] for k in ("concept", "metric", "old", "new", "delta")}


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v + 0.0:.3f}".replace("-0.000", "0.000")  # a forgetting of -1e-9 is no forgetting, not "-0.000"


def render_text(rows: list[dict], old_label: str, new_label: str) -> str:
    """The scorecard as the terminal shows it: one line per concept and metric, old -> new (delta)."""
    lines = [f"scorecard: {old_label} -> {new_label} (same protocol, same sample seeds)"]
    for r in rows:
        lines.append(
            f"  {r['concept']:16s} {r['metric']:17s} {_fmt(r['old']):>6s} -> {_fmt(r['new']):>6s} ({_delta(r)})"
        )
    return "\n".join(lines)


def _delta(r: dict) -> str:
    return "n/a" if math.isnan(r["delta"]) else f"{r['delta']:+.3f}".replace("-0.000", "+0.000")


def render_markdown(rows: list[dict], old_label: str, new_label: str) -> str:
    """The scorecard as a markdown table (the model card, docs/results.md)."""
    lines = [
        f"| concept | metric | {old_label} | {new_label} | delta |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['concept']} | {r['metric']} | {_fmt(r['old'])} | {_fmt(r['new'])} | {_delta(r)} |" for r in rows]
    return "\n".join(lines)
