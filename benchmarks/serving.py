"""What `lfsd serve` delivers under load, in ONE run on one workspace: images/s and p50/p99 latency at 1, 4
and 16 concurrent clients with Ray Serve's batching (`serving.max_batch_size` from params.yaml) and one
request at a time (`--max-batch-size 1`); the time from a promotion to the first response drawn by the new
version (once through `lfsd promote`, Prefect's start-up included, then in-process as the flow calls it);
the serving replica's resident memory over 20 swaps of the production version.

    python -m benchmarks.serving --work /tmp/lfsd-serving --json docs/figures/serving.json
    python -m benchmarks.serving --work /tmp/lfsd-serving --json docs/figures/serving.json --only swaps

The workspace is the real pipeline's: `lfsd init`'s embedded base, two concepts of examples/concepts
onboarded in-process with a short training (serving cost does not depend on how long a LoRA trained). A
client is a thread sending its requests one after another (1 image each, the version's default steps);
every client sends the same number of requests, so each level stops by itself. The machine's load average
is recorded beside each figure: other work on the same cores distorts every number here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks.serving_process import Served, cli_env, free_port

REPO = Path(__file__).resolve().parents[1]
CONCEPTS = ("00-byruri", "01-xubyzo")
SHORT = {  # the build only: serving draws with the version's sampling defaults, untouched
    "training": {"steps": 20, "batch_size": 2, "kd_batch_size": 2, "kd_trajectories": 2, "kd_teacher_steps": 2},
    "forgetting": {"images_per_prompt": 1, "rcf_seeds": 2, "steps": 3},
    "ray": {"enabled": False},
    "gate": {
        "max_avg_forgetting": 1.0,
        "min_rcf_similarity": -1.0,
        "min_new_concept_fidelity": -1.0,
        "max_confusion": 1.0,
    },
}
LEVELS = (1, 4, 16)


def build(work: Path, log=print) -> Path:
    """work/ws with versions 1 (byruri) and 2 (byruri, xubyzo; production); reused when already there."""
    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import init_workspace, load_workspace

    root = work / "ws"
    os.environ["LFSD_STATE_DIR"] = str(root / ".lfsd")
    os.environ["LFSD_WORKSPACE"] = str(root)
    if not root.exists():
        init_workspace(root, params_overrides=SHORT)
    ws = load_workspace(root)
    for folder in CONCEPTS:
        r = onboard(ws, REPO / "examples" / "concepts" / folder, launcher=in_process(2), log=lambda s: None)
        log(f"{folder}: {r.status} version {r.version or '(was there)'}")
    return root


def post(url: str, body: dict, timeout: float = 300) -> tuple[float, dict]:
    """(seconds, JSON answer without the images) of one POST /generate."""
    req = urllib.request.Request(f"{url}/generate", json.dumps(body).encode(), {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        out = json.loads(r.read())
    return time.perf_counter() - t0, {"version": out["version"], "images": len(out["images"])}


def load(url: str, clients: int, per_client: int, prompt: str) -> dict:
    """`clients` threads, each sending `per_client` requests of one image in a row: images/s and latency."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(per_client):
            try:
                s, _ = post(url, {"prompt": prompt, "seed": 1000 * k + i, "num_images": 1})
                with lock:
                    latencies.append(s)
            except Exception as e:  # a failed request is a figure, not a crash
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "clients": clients,
        "requests": clients * per_client,
        "failed": len(failures),
        "first_failure": failures[0] if failures else None,
        "wall_s": round(wall, 3),
        "images_per_s": round(len(lat) / wall, 3),
        "p50_s": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "p99_s": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }


def first_response_of(url: str, version: str, prompt: str, t0: float, timeout: float = 300) -> float:
    """Seconds from `t0` (perf_counter) until a response drawn by `version` comes back."""
    seed = 0
    while time.perf_counter() - t0 < timeout:
        _, out = post(url, {"prompt": prompt, "seed": seed, "num_images": 1, "steps": 2})
        if out["version"] == version:
            return round(time.perf_counter() - t0, 3)
        seed += 1
    raise TimeoutError(f"version {version} not served {timeout} s after its promotion")


def promote_by_cli(served: Served, root: Path, version: str, prompt: str) -> dict:
    """`lfsd promote VERSION` as a person runs it: seconds from the command's start to its exit and to the
    first response of `version` (requests keep coming while the command runs)."""
    t0 = time.perf_counter()
    cli = subprocess.Popen(
        [str(Path(sys.executable).with_name("lfsd")), "promote", version, "--workspace", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=cli_env(root),
    )
    first = first_response_of(served.url, version, prompt, t0)
    output = cli.communicate(timeout=300)[0].decode()
    assert cli.returncode == 0, output[-2000:]
    exited = round(time.perf_counter() - t0, 3)
    return {"command": f"lfsd promote {version}", "first_response_s": first, "command_exit_s": exited}


def settle(url: str, timeout: float = 30.0) -> None:
    """Wait until the replica says the version it swapped out is released (/version's retired_alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not json.loads(urllib.request.urlopen(f"{url}/version", timeout=30).read()).get("retired_alive"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the replica still holds its previous version {timeout:.0f} s after the swap")


def swaps(served: Served, root: Path, n: int, prompt: str) -> dict:
    """`n` promotions alternating between versions 1 and 2 (the in-process call `lfsd promote`'s flow makes):
    seconds from the alias move to the first response of the new version, and the replica's RSS after each,
    twice: at that first response (the version swapped out may still be alive then: a batch that began before
    the swap draws with it until its loop ends) and settled, once /version says it is released."""
    from components.publishing.promotion import promote
    from components.workspace.layout import load_workspace

    ws = load_workspace(root)
    now = json.loads(urllib.request.urlopen(f"{served.url}/version", timeout=30).read())["version"]
    rss, parts = [served.replica_rss()], [served.replica_rss_parts()]
    settled, seconds = [rss[0]], []
    for i in range(n):
        target = "1" if now == "2" else "2"
        t0 = time.perf_counter()
        promote(ws, target, f"benchmark swap {i + 1}", log=lambda s: None)
        seconds.append(first_response_of(served.url, target, prompt, t0))
        rss.append(served.replica_rss())
        parts.append(served.replica_rss_parts())
        settle(served.url)
        settled.append(served.replica_rss())
        now = target
    mib = [round(r / 2**20, 1) for r in rss]
    return {
        "swaps": n,
        "promote_to_first_response_s": seconds,
        "median_s": round(float(np.median(seconds)), 3),
        "max_s": round(max(seconds), 3),
        "rss_mib": mib,
        "rss_growth": round((rss[-1] - rss[0]) / rss[0], 4),
        "rss_growth_max": round((max(rss) - rss[0]) / rss[0], 4),
        "rss_anon_mib": [p["anon"] for p in parts],
        "rss_settled_mib": [round(r / 2**20, 1) for r in settled],
        "rss_settled_growth": round((settled[-1] - settled[0]) / settled[0], 4),
        "rss_settled_growth_max": round((max(settled) - settled[0]) / settled[0], 4),
        "rss_file_mib": [p["file"] for p in parts],
    }


def run(work: Path, per_client: dict[int, int], n_swaps: int, log=print) -> dict:
    from components.workspace.layout import load_workspace

    t0 = time.perf_counter()
    root = build(work, log)
    built = round(time.perf_counter() - t0, 1)
    batch = load_workspace(root).params.serving.max_batch_size
    prompt = "a <byruri> cross on a white background"  # byruri is in both versions
    out = {"workspace_build_s": built, "max_batch_size": batch, "modes": {}}
    for mode, size in (("batched", batch), ("one_at_a_time", 1)):
        served = Served(root, free_port(), size, work / f"serve-{mode}.log")
        try:
            post(served.url, {"prompt": prompt, "num_images": 1})  # warm: the first draw pays one-time costs
            levels = []
            for clients in LEVELS:
                levels.append(load(served.url, clients, per_client[clients], prompt))
                log(f"{mode} {clients} clients: {levels[-1]}")
            out["modes"][mode] = {"max_batch_size": size, "ready_s": served.ready_s, "levels": levels}
            if mode == "batched":
                out["promote_cli"] = promote_by_cli(served, root, "1", prompt)
                log(f"lfsd promote: {out['promote_cli']}")
                out["swaps"] = swaps(served, root, n_swaps, prompt)
                log(f"swaps: median {out['swaps']['median_s']} s, RSS growth {out['swaps']['rss_growth']:.2%}")
        finally:
            served.stop()
    b, one = (out["modes"][m]["levels"][-1]["images_per_s"] for m in ("batched", "one_at_a_time"))
    out["speedup_at_16_clients"] = round(b / one, 2)
    return out


def only_swaps(a: argparse.Namespace) -> None:
    """`--only swaps`: a fresh `lfsd serve` (batched), a warm request, the swaps, into --json's "swaps"."""
    from components.workspace.layout import load_workspace

    t0, root, prompt = time.perf_counter(), build(a.work.resolve()), "a <byruri> cross on a white background"
    served = Served(root, free_port(), load_workspace(root).params.serving.max_batch_size, a.work / "serve-swaps.log")
    try:
        post(served.url, {"prompt": prompt, "num_images": 1})
        out = swaps(served, root, a.swaps, prompt)
    finally:
        served.stop()
    out |= {"wall_s": round(time.perf_counter() - t0, 1), "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    out["command"] = "python -m benchmarks.serving " + " ".join(sys.argv[1:])
    figures = json.loads(a.json.read_text()) if a.json.exists() else {}
    a.json.write_text(json.dumps(figures | {"swaps": out}, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="Scratch folder (the workspace is kept there).")
    ap.add_argument("--json", type=Path, required=True, help="Where the figures go.")
    ap.add_argument("--requests", default="8,4,2", help="Requests per client at 1, 4 and 16 clients.")
    ap.add_argument("--swaps", type=int, default=20)
    ap.add_argument("--only", choices=("swaps",), help="Only the swaps (RSS over swaps), into --json's 'swaps'.")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    if a.only == "swaps":  # the memory over swaps alone (2-3 min on a built workspace)
        return only_swaps(a)
    per_client = dict(zip(LEVELS, (int(x) for x in a.requests.split(","))))
    t0 = time.perf_counter()
    out = run(a.work.resolve(), per_client, a.swaps)
    out |= {
        "command": "python -m benchmarks.serving " + " ".join(sys.argv[1:]),
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_end": os.getloadavg()},
        "target_speedup_at_16_clients": 2.0,
    }
    a.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "modes"}, indent=2))


if __name__ == "__main__":
    main()
