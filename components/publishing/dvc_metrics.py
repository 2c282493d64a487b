"""The metrics and plots DVC shows for a workspace (`dvc metrics show`, `dvc plots show`, and `dvc
metrics diff HEAD~3` across onboardings): small JSON files written from the newest checkpoint's
forgetting history and committed by git in the same commit as that checkpoint, declared in the
workspace's dvc.yaml (`layout.DVC_YAML_SECTIONS`)."""

from __future__ import annotations

import json
import math

from components.workspace.layout import HISTORY_FILE, METRICS_FILE


def _known(row: list) -> list[float]:
    return [float(v) for v in row if v is not None and not math.isnan(v)]


def _rounded(value) -> float | None:
    """A number for the JSON DVC reads (None for a value not measured: JSON has no NaN)."""
    return None if value is None or math.isnan(float(value)) else round(float(value), 4)


def _step_confusion(step: dict) -> float | None:
    """The mean confusion over a step's scored concepts (None: a record written before confusion was
    measured, or a step with one concept learned, where nothing can be confused)."""
    concepts = step.get("concepts", [])
    measured = _known([c.get("confusion") for c in concepts])
    return _rounded(sum(measured) / len(measured)) if measured and len(concepts) > 1 else None


def history_rows(steps: list[dict], matrix: list[list[float]], names: list[str]) -> list[dict]:
    """One row per task k: the new concept's fidelity A[k][k], the mean over everything learned so far,
    the average forgetting of the earlier concepts (`forgetting_at`, as in the sequence metrics: cells the
    bounded protocol left unscored are skipped) and the RCF similarity."""
    from components.evaluation.forgetting import forgetting_at

    rows = []
    for k, row in enumerate(matrix):
        rows.append(
            {
                "task": k + 1,
                "concept": names[k],
                "new_concept_fidelity": round(float(row[k]), 4),
                "mean_fidelity": round(sum(_known(row)) / len(_known(row)), 4),
                "avg_forgetting": round(forgetting_at(matrix, k), 4),
                "rcf_similarity": round(float(steps[k]["rcf_similarity"]), 4),
                "confusion": _step_confusion(steps[k]),
            }
        )
    return rows


def metrics_files(forgetting: dict) -> dict[str, bytes]:
    """{repo-relative path: JSON bytes} from a checkpoint's forgetting history (its `forgetting.json`:
    the step records and the sequence metrics)."""
    m, steps = forgetting["metrics"], forgetting["steps"]
    summary = {
        "tasks": len(m["concepts"]),
        "newest": m["concepts"][-1],
        **{
            k: round(float(m[k]), 4)
            for k in (
                "final_fidelity",
                "avg_forgetting",
                "bwt",
                "rcf_preservation",
                "new_concept_fidelity",
                "text_alignment",
            )
        },
    }
    summary |= {k: _rounded(m.get(k)) for k in ("confusion", "margin")}  # null: not measured (older records)
    history = history_rows(steps, m["matrix"], m["concepts"])
    return {
        METRICS_FILE: (json.dumps(summary, indent=2) + "\n").encode(),
        HISTORY_FILE: (json.dumps(history, indent=2) + "\n").encode(),
    }
