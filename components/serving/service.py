"""Ray and Ray Serve for `lfsd serve`: a local Ray as Ray Train gets one (state under the workspace's state
folder, loopback only; RAY_ADDRESS joins a cluster instead), the HTTP proxy on serving.host:port, the
deployment with `serving.replicas` replicas, and everything stopped again on SIGINT / SIGTERM; `app`, the same
deployment for a Ray cluster that KubeRay runs (infra/kuberay/rayservice.yaml)."""

from __future__ import annotations

import dataclasses
import math
import signal
import threading

from components.config import ServingConfig

APP_NAME = "lfsd"


def settings(ws, cfg: ServingConfig) -> dict:
    """What each replica needs, as plain data (it is sent to the replica processes)."""
    from components.registry import tracking_uri_default

    return {
        "model_name": ws.params.pipeline.model_name,
        "tracking_uri": tracking_uri_default(ws.root),
        "serving": dataclasses.asdict(cfg),
        "runtime": dataclasses.asdict(ws.params.runtime),
    }


def app(args: dict):
    """The application a KubeRay RayService imports (infra/kuberay/rayservice.yaml, serveConfigV2's
    `import_path: components.serving.service:app`): the deployment `lfsd serve` runs, for the workspace at
    args["workspace"] (default $LFSD_WORKSPACE). Why a builder: Ray Serve takes only an application or a
    function that returns one there, and `start` binds the deployment only after starting Ray itself; on a
    cluster KubeRay has started Ray and the proxies, and serveConfigV2's `deployments` set the replicas and
    their resources."""
    from components.serving.deployment import Endpoint
    from components.workspace.layout import load_workspace

    ws = load_workspace((args or {}).get("workspace"))
    return Endpoint.bind(settings(ws, ws.params.serving))


def start(ws, cfg: ServingConfig) -> str:
    """Ray, the proxy and the deployment; returns the URL. The replicas load `production` in the background
    (GET /health answers 503 until one has)."""
    from ray import serve

    from components.device import placement
    from components.ray_train.runtime import ensure_ray
    from components.serving.deployment import Endpoint

    gpu = placement(ws.params.runtime).device.type == "cuda"  # refuses a device this machine lacks, here
    ray_cfg = dataclasses.replace(
        ws.params.ray,
        enabled=True,
        num_workers=cfg.replicas,
        cpus_per_worker=max(1, math.ceil(cfg.replica_cpus)),
        use_gpu=gpu,
    )
    ensure_ray(ray_cfg, ws.state_dir)
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    serve.start(http_options={"host": cfg.host, "port": cfg.port}, logging_config=quiet)
    deployment = Endpoint.options(
        num_replicas=cfg.replicas,
        ray_actor_options={"num_cpus": cfg.replica_cpus, "num_gpus": 1 if gpu else 0},
    )
    serve.run(deployment.bind(settings(ws, cfg)), name=APP_NAME, route_prefix="/", logging_config=quiet)
    return f"http://{cfg.host}:{cfg.port}"


def stop() -> None:
    from ray import serve

    from components.ray_train.runtime import shutdown_ray

    try:
        serve.shutdown()
    finally:
        shutdown_ray()


def serve_until_stopped(ws, cfg: ServingConfig, log=print) -> None:
    """Start, say where, wait for SIGINT or SIGTERM, stop what was started."""
    stopping = threading.Event()
    try:
        url = start(ws, cfg)
        for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs a SIGTERM handler of its own
            signal.signal(sig, lambda *_: stopping.set())
        log(f"serving {url} models:/{ws.params.pipeline.model_name}@production")
        stopping.wait()
    finally:
        stop()
