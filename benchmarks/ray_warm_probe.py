"""Can Ray keep the training imports warm across `TorchTrainer.fit` calls? Two probes on a local Ray
(the service issue's overhead target rests on the answer; docs/results.md records it):

    python -m benchmarks.ray_warm_probe --probe reuse   # do new actors land in warm worker processes?
    python -m benchmarks.ray_warm_probe --probe hook    # fit() with a worker_process_setup_hook that pre-imports

`reuse`: two tasks import torch+peft in the pool's workers, then three actors are created one after the
other; printed: each actor's pid, whether peft was already imported in it, seconds to its first answer.
`hook`: three fits of a loop that times `import torch, diffusers, peft, transformers`, first with a plain
runtime env, then with `worker_process_setup_hook` pre-importing them; printed: fit() wall, fit() to the
loop's start, the loop's import seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HEAVY = "import torch, peft, transformers, diffusers; from diffusers import UNet2DConditionModel"


def preimport() -> None:
    """The setup hook: what the training loop would import."""
    exec(HEAVY)


def _loop(config: dict) -> dict:
    t0 = time.time()
    had = "diffusers" in sys.modules
    exec(HEAVY)
    return {"import_s": time.time() - t0, "had": had, "start": t0, "pid": os.getpid()}


def probe_reuse() -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="rp", dir="/tmp"))

    @ray.remote(num_cpus=1)
    def warm() -> int:
        exec(HEAVY)
        return os.getpid()

    @ray.remote(num_cpus=1)
    class Probe:
        def info(self):
            return os.getpid(), "peft" in sys.modules

    print("warm task worker pids", ray.get([warm.remote(), warm.remote()]), flush=True)
    for i in range(3):
        t0 = time.time()
        actor = Probe.remote()
        pid, warm_already = ray.get(actor.info.remote())
        print(f"actor {i}: pid {pid}, peft already imported {warm_already}, {time.time() - t0:.1f} s", flush=True)
        ray.kill(actor)
        time.sleep(3)
    ray.shutdown()


def probe_hook() -> None:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    for mode in ("plain", "hook"):
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}}
        if mode == "hook":
            env["worker_process_setup_hook"] = "benchmarks.ray_warm_probe.preimport"
        ray.init(
            num_cpus=2, include_dashboard=False, runtime_env=env, _temp_dir=tempfile.mkdtemp(prefix="rp", dir="/tmp")
        )
        for i in range(3):
            t0 = time.time()
            result = TorchTrainer(
                _loop,
                torch_config=TorchConfig(backend="gloo"),
                scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(
                    name=f"probe-{mode}-{i}-{time.time():.0f}", storage_path=tempfile.mkdtemp(prefix="rp-results")
                ),
            ).fit()
            m = result.return_value
            print(
                f"{mode} fit {i}: wall {time.time() - t0:.1f} s, fit->loop {m['start'] - t0:.1f} s, "
                f"imports in the loop {m['import_s']:.2f} s (already imported: {m['had']})",
                flush=True,
            )
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probe", choices=("reuse", "hook"), required=True)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")
    probe_reuse() if ap.parse_args().probe == "reuse" else probe_hook()


if __name__ == "__main__":
    main()
