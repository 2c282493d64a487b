"""Part 4 of `benchmarks/gpu_check.py`: a sequence on the embedded base, and the system metrics it logged.

A 3-concept `lfsd sequence` (examples/concepts/*) on the embedded base, in a scratch workspace made by
`init_workspace` with `runtime.device: cuda`, `runtime.precision: bf16`, `ray.use_gpu: true`,
`training.steps: 50` in its params.yaml (no `--set`), run as a subprocess with LFSD_STATE_DIR inside
the workspace: its exit code and wall time, and from that workspace's MLflow store the logged system
metrics (`system/gpu_0_utilization_percentage` where MLflow's GPU monitor could read the GPU).
`--dry-run-cpu`: a 1-concept sequence on the CPU without Ray, at tiny knobs.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEQUENCE_PACKAGES = ("mlflow", "prefect", "ray", "dvc", "great_expectations", "typer")


def _sequence(scratch: Path, n: int, dry: bool, timeout: float) -> dict:
    import importlib.util

    missing = [p for p in SEQUENCE_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        return {"skipped": f"packages missing here: {', '.join(missing)} (carry them as wheels)"}
    from components.workspace.layout import init_workspace

    root = scratch / "ws"
    state = root / ".lfsd"
    overrides = {
        "runtime": {"device": "cuda", "precision": "bf16"},
        "ray": {"use_gpu": True},
        "training": {"steps": 50},
    }
    if dry:  # the CPU, no Ray (its 35-55 s start-up), the smallest evaluation
        overrides = {
            "runtime": {"device": "cpu", "precision": "bf16"},
            "ray": {"use_gpu": False, "enabled": False},
            "training": {"steps": 2, "batch_size": 1, "kd_batch_size": 1, "kd_trajectories": 2, "kd_teacher_steps": 2},
            "forgetting": {"images_per_prompt": 1, "rcf_seeds": 2, "steps": 2},
            "sampling": {"steps": 2},
            "gate": {
                "max_avg_forgetting": 1.0,
                "min_rcf_similarity": -1.0,
                "min_new_concept_fidelity": -1.0,
                "max_confusion": 1.0,
            },
        }
    saved = os.environ.get("LFSD_STATE_DIR")
    os.environ["LFSD_STATE_DIR"] = str(state)
    try:
        init_workspace(root, params_overrides=overrides)
    finally:
        if saved is None:
            os.environ.pop("LFSD_STATE_DIR", None)
        else:
            os.environ["LFSD_STATE_DIR"] = saved
    concepts = sorted(p for p in (REPO / "examples" / "concepts").iterdir() if (p / "concept.yaml").is_file())[:n]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_", "RAY_ADDRESS", "LFSD_"))}
    env |= {"LFSD_STATE_DIR": str(state), "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}
    cmd = [sys.executable, "-m", "components.cli", "sequence", *map(str, concepts)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        code, out = "timeout", f"{err.stdout or ''}{err.stderr or ''}"
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
    wall = time.perf_counter() - start
    result = {
        "concepts": [p.name for p in concepts],
        "params_overrides": overrides,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "stdout_tail": out[-1500:] if code != 0 else out[-400:],
        "system_metrics": _system_metrics(state / "mlflow" / "mlflow.db"),
    }
    if code != 0:
        result["error"] = f"lfsd sequence exited {code}"
    return result


def _system_metrics(db: Path) -> dict:
    """Mean / max / count of every `system/*` metric the sequence's runs logged."""
    if not db.is_file():
        return {"error": f"{db}: no MLflow store"}
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select key, avg(value), max(value), count(*) from metrics where key like 'system/%' group by key"
        ).fetchall()
    out = {k: {"mean": round(m, 2), "max": round(x, 2), "n": n} for k, m, x, n in rows}
    gpu = "system/gpu_0_utilization_percentage"
    return {"gpu_0_utilization_percentage": out.get(gpu, "not logged"), "all": out}
