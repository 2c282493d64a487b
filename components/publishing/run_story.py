"""What one onboarding run shows in the MLflow UI without a download: the concept's dataset as an MLflow
dataset input, the system metrics sampled while it trained (the UI's "System metrics" tab reads every
`system/` key), the loss curve, and the forgetting history as metrics whose step is the task index, so
the UI's charts draw each earlier concept's fidelity across the sequence; plus A[k][j] as an MLflow table.

Call inside an active run (`log_and_register` does).
"""

from __future__ import annotations

import math
import warnings

SYSTEM_PREFIX = "system/"
MATRIX_TABLE = "forgetting_matrix.json"


def log_dataset_input(path: str, md5: str, name: str, class_word: str, shots: int) -> None:
    """The versioned dataset as a training input: its DVC md5 is the digest, its folder the source."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # two registered sources claim a plain path; both are the local one
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(path)
    dataset = MetaDataset(source, name=name, digest=md5[:36])
    mlflow.log_input(
        dataset, context="training", tags={"class_word": class_word, "shots": str(shots), "dvc_md5": md5, "path": path}
    )


def log_training_rows(rows: list[dict]) -> None:
    """Reported rows: `system/...` keys as system metrics, the rest as `loss.<name>`, all at their step."""
    import mlflow

    for row in rows:
        step = int(row["step"])
        values = {(k if k.startswith(SYSTEM_PREFIX) else f"loss.{k}"): float(v) for k, v in row.items() if k != "step"}
        mlflow.log_metrics(values, step=step)


def forgetting_history(metrics: dict) -> list[tuple[int, dict[str, float]]]:
    """(task index 1..k, {fidelity.<concept>: A[i][j]}) for every step so far: concept j from its own task on."""
    names, matrix = metrics["concepts"], metrics["matrix"]
    return [
        (i + 1, {f"fidelity.{names[j]}": float(v) for j, v in enumerate(row) if v is not None and not math.isnan(v)})
        for i, row in enumerate(matrix)
    ]


def log_forgetting_history(metrics: dict) -> None:
    """Each earlier concept's fidelity at every task index, and A[k][j] as a table (one row per task)."""
    import mlflow

    for step, values in forgetting_history(metrics):
        mlflow.log_metrics(values, step=step)
    names = metrics["concepts"]
    rows = [
        {
            "task": i + 1,
            "learned": names[i],
            **{n: (None if v is None or math.isnan(v) else round(float(v), 4)) for n, v in zip(names, row)},
        }
        for i, row in enumerate(metrics["matrix"])
    ]
    mlflow.log_table({key: [r[key] for r in rows] for key in rows[0]}, artifact_file=MATRIX_TABLE)
