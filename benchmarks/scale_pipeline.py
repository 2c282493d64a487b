"""Lifelong at scale through the real pipeline: what each onboarding costs as the chain grows.

    python -m benchmarks.scale_pipeline --n 50 --seed 0 --json docs/figures/scale/pipeline-seed0.json

`lfsd init` makes a fresh workspace on the embedded base; then each world concept of the sequence is
onboarded by its own `lfsd onboard` process, as a user or the schedule would: the Prefect flow (GX
validation, DVC, Ray Train, the bounded forgetting evaluation, MLflow registration, the gate). Per step k
(one JSON row, written after every step so a long run keeps what it measured): the command's wall seconds
and peak RSS (os.wait4: the `lfsd` process itself; Ray's workers are separate processes), the seconds of
each step of the flow as the run logged them to MLflow (`seconds.<step>`, plus `train_seconds`, the
training loop inside the Ray worker), and the bytes each store holds after the step: git objects, the DVC
cache, the DVC remote, the MLflow artifact store, the checkpoints in the working tree.

The quality curves come from `benchmarks/scale.py` (the same training and scoring code, in-process, so
several seeds fit in a session); this run is the cost of the service around them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

STORES = {"git": ".git", "dvc_cache": ".dvc/cache", "checkpoints": "checkpoints", "data": "data"}


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else 0


def _env(ws: Path, prefect_api: str | None) -> dict:
    """The `lfsd` process's environment: this workspace's state, offline, no endpoint of ours leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_", "RAY_ADDRESS", "LFSD_"))}
    env |= {"LFSD_STATE_DIR": str(ws / ".lfsd"), "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return env


def _lfsd(ws: Path, args: list[str], env: dict, log_file: Path, cwd: Path | None = None) -> tuple[int, float, float]:
    """Run `lfsd ARGS`; (exit code, wall seconds, peak RSS MiB of the process)."""
    t0 = time.perf_counter()
    with open(log_file, "a") as log:
        log.write(f"\n$ lfsd {' '.join(args)}\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "components.cli", *args],
            cwd=cwd or ws,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024


def _run_metrics(ws: Path, run_name: str) -> dict[str, float]:
    """The latest values of the MLflow run named `run_name` (the checkpoint folder's name), read from the
    workspace's tracking database."""
    with sqlite3.connect(ws / ".lfsd" / "mlflow" / "mlflow.db") as con:
        rows = con.execute(
            "select m.key, m.value from latest_metrics m join runs r on r.run_uuid = m.run_uuid "
            "where r.name = ? and r.lifecycle_stage = 'active'",
            (run_name,),
        ).fetchall()
    return {key: value for key, value in rows}


def _stores(ws: Path) -> dict[str, int]:
    out = {name: _bytes(ws / rel) for name, rel in STORES.items()}
    state = ws / ".lfsd"
    out["mlflow_artifacts"] = _bytes(state / "mlflow" / "artifacts")
    out["dvc_remote"] = _bytes(state / "dvc-remote")
    out["state_total"] = _bytes(state)
    return out


def run(
    n: int, seed: int, out_json: Path, work: Path, shots: int = 4, prefect_api: str | None = None, log=print
) -> dict:
    import shutil

    from components.world.concepts import write_concepts

    work = Path(work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ws, log_file = work / "ws", work / "lfsd.log"
    dirs = write_concepts(work / "concepts", n=n, shots=shots, seed=seed)
    env = _env(ws, prefect_api)
    code, init_s, _ = _lfsd(ws, ["init", str(ws)], env, log_file, cwd=work)
    if code:
        raise RuntimeError(f"lfsd init failed ({code}); see {log_file}")
    report = {
        "command": f"python -m benchmarks.scale_pipeline --n {n} --seed {seed} --json {out_json}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "n": n,
        "seed": seed,
        "shots": shots,
        "prefect_api": prefect_api or "ephemeral (started by each lfsd process)",
        "init_s": round(init_s, 2),
        "base_bytes": _bytes(ws / "models" / "base"),
        "stores_after_init": _stores(ws),
        "steps": [],
    }
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for k, folder in enumerate(dirs, start=1):
        code, wall, rss = _lfsd(ws, ["onboard", str(folder)], env, log_file)
        if code:
            raise RuntimeError(f"lfsd onboard {folder} failed ({code}) at k={k}; see {log_file}")
        checkpoint = next(p.name for p in (ws / "checkpoints").glob(f"{k:02d}-*") if p.is_dir())  # not NN-name.dvc
        metrics = _run_metrics(ws, checkpoint)
        row = {
            "k": k,
            "concept": folder.name,
            "step_s": round(wall, 2),
            "peak_rss_mb": round(rss, 1),
            "train_s": metrics.get("train_seconds"),
            **{key.removeprefix("seconds."): round(v, 2) for key, v in metrics.items() if key.startswith("seconds.")},
            "avg_forgetting": metrics.get("avg_forgetting"),
            "final_fidelity": metrics.get("final_fidelity"),
            **{f"bytes_{name}": b for name, b in _stores(ws).items()},
        }
        report["steps"].append(row)
        report["wall_seconds"] = round(time.time() - start, 1)
        Path(out_json).write_text(json.dumps(report, indent=2))
        log(
            f"k={k} {folder.name}: {wall:.1f} s (train {row['train_s'] or float('nan'):.1f}, evaluate "
            f"{row.get('evaluate', float('nan')):.1f}), rss {rss:.0f} MB, "
            f"mlflow {row['bytes_mlflow_artifacts'] / 2**20:.1f} MiB, "
            f"dvc cache {row['bytes_dvc_cache'] / 2**20:.1f} MiB"
        )
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--json", type=Path, default=Path("docs/figures/scale/pipeline-seed0.json"))
    ap.add_argument("--work", type=Path, default=Path("outputs/scale-pipeline"))
    ap.add_argument(
        "--prefect-api",
        default=None,
        help="A running Prefect server's API URL (default: the ephemeral API "
        "each lfsd process starts, as on a fresh machine).",
    )
    args = ap.parse_args(argv)
    run(args.n, args.seed, args.json, args.work, args.shots, args.prefect_api)


if __name__ == "__main__":
    main()
