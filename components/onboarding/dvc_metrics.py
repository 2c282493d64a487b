"""The metrics and plots DVC shows for a workspace (`dvc metrics show`, `dvc plots show`, and `dvc
metrics diff HEAD~3` across onboardings): small JSON files written from the newest checkpoint's
forgetting history and committed by git in the same commit as that checkpoint, declared in the
workspace's dvc.yaml (`DVC_YAML_SECTIONS`)."""

from __future__ import annotations

import json
import math

METRICS_FILE = "metrics/forgetting.json"
HISTORY_FILE = "metrics/history.json"
HISTORY_Y = ("mean_fidelity", "avg_forgetting", "new_concept_fidelity", "rcf_similarity")
DVC_YAML_SECTIONS = {
    "metrics": [METRICS_FILE],
    "plots": [{HISTORY_FILE: {"x": "task", "y": list(HISTORY_Y)}}],
}


def _known(row: list) -> list[float]:
    return [float(v) for v in row if v is not None and not math.isnan(v)]


def history_rows(steps: list[dict], matrix: list[list[float]], names: list[str]) -> list[dict]:
    """One row per task k: the new concept's fidelity A[k][k], the mean over everything learned so far,
    the average forgetting of the earlier concepts (best earlier score minus now) and the RCF similarity."""
    rows = []
    for k, row in enumerate(matrix):
        drops = [max(matrix[i][j] for i in range(j, k)) - row[j] for j in range(k)]
        rows.append({"task": k + 1, "concept": names[k], "new_concept_fidelity": round(float(row[k]), 4),
                     "mean_fidelity": round(sum(_known(row)) / len(_known(row)), 4),
                     "avg_forgetting": round(sum(drops) / len(drops), 4) if drops else 0.0,
                     "rcf_similarity": round(float(steps[k]["rcf_similarity"]), 4)})
    return rows


def metrics_files(forgetting: dict) -> dict[str, bytes]:
    """{repo-relative path: JSON bytes} from a checkpoint's forgetting history (its `forgetting.json`:
    the step records and the sequence metrics)."""
    m, steps = forgetting["metrics"], forgetting["steps"]
    summary = {"tasks": len(m["concepts"]), "newest": m["concepts"][-1],
               **{k: round(float(m[k]), 4) for k in ("final_fidelity", "avg_forgetting", "bwt", "rcf_preservation",
                                                     "new_concept_fidelity", "text_alignment")}}
    history = history_rows(steps, m["matrix"], m["concepts"])
    return {METRICS_FILE: (json.dumps(summary, indent=2) + "\n").encode(),
            HISTORY_FILE: (json.dumps(history, indent=2) + "\n").encode()}
