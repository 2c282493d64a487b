"""`lfsd serve` on 127.0.0.1 against a real MLflow server, on a workspace with two registered versions
(concepts a, then a + b): bad requests are refused in one line and the server lives on; under a bounded
load (fixed clients, each stopping by itself) production moves by rollback, promote and forget, and every
response comes from a version that was production during its request (within the documented reach:
follow_seconds + the load), none fails, and none holds the erased concept once the erasure reached the
endpoint; with MLflow stopped the loaded version keeps serving and /health says the registry is unseen.
The moves are the user's commands, `lfsd rollback`, `lfsd promote` and `lfsd forget`, each its own process
(a real Prefect server, the same MLflow server)."""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import NO_RAY, make_workspace
from tests.integration.services import cli_env, free_port, mlflow_cli, stop, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOLLOW_SECONDS = 0.5
CLIENTS = 3
MAX_REQUESTS_PER_CLIENT = 3000  # a client stops once the alias moves are done, or at this many: always bounded
PAUSE = 0.2  # seconds between a client's requests (a forget takes tens of seconds on a busy machine)
MAX_BODY_BYTES = 200_000
STEPS = 2  # DDIM steps per request: the tiny base, cheap
BATCH_WAIT = 0.5  # a batch waits this long for more requests: concurrent ones land in one batch on a busy machine


def _quiet(message: str) -> None:
    pass


def call(url: str, path: str, body: dict | bytes | None = None, timeout: float = 120) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one request; an HTTP error is an answer too."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}{path}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


@contextlib.contextmanager
def _mlflow(workdir: Path):
    """`mlflow server` (sqlite + artifact proxy) on a free port: (uri, process), so a test can stop it."""
    port, log = free_port(), workdir / "mlflow-server.log"
    cmd = [*mlflow_cli(), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{workdir / 'server.db'}"]
    cmd += ["--artifacts-destination", str(workdir / "server-artifacts")]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, 120, log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def served(tiny_base_dir, tmp_path_factory):
    """MLflow server, a workspace with versions 1 (a) and 2 (a, b; production), `lfsd serve` on it."""
    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    tmp = tmp_path_factory.mktemp("serve")
    root = tmp / "ws"
    with pytest.MonkeyPatch.context() as mp, _mlflow(tmp) as (mlflow_uri, mlflow_proc):
        for var in ("MLFLOW_REGISTRY_URI", "RAY_ADDRESS"):
            mp.delenv(var, raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        mp.setenv("LFSD_STATE_DIR", str(root / ".lfsd"))
        mp.setenv("LFSD_WORKSPACE", str(root))
        serving = {"max_body_bytes": MAX_BODY_BYTES, "batch_wait_seconds": BATCH_WAIT}
        make_workspace(root, tiny_base_dir, NO_RAY | {"serving": serving})
        ws = load_workspace(root)
        folders = write_concepts(tmp / "in", n=2, shots=3, seed=5)
        t0 = time.time()
        for folder in folders:
            onboard(ws, folder, launcher=in_process(1), log=_quiet)
            print(f"onboarded {folder.name} at {time.time() - t0:.1f} s")
        names = [f.name.split("-", 1)[1] for f in folders]
        port = free_port()
        log = tmp / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("lfsd")), "serve", "--workspace", str(root)]
                + ["--port", str(port), "--follow-seconds", str(FOLLOW_SECONDS)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ),
            )
        url = f"http://127.0.0.1:{port}"
        try:
            t0 = time.time()
            wait_http(f"{url}/health", proc, 240, log)
            print(f"serving after {time.time() - t0:.1f} s")
            yield {
                "url": url,
                "ws": ws,
                "proc": proc,
                "log": log,
                "mlflow": mlflow_proc,
                "mlflow_uri": mlflow_uri,
                "names": names,
            }
        finally:
            stop(proc)


def _png_b64() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (9, 9), (0, 90, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_bad_requests_get_a_one_line_4xx_and_the_server_lives_on(served):
    url, (a, _) = served["url"], served["names"]
    ok = {"prompt": f"a photo of <{a}>", "steps": STEPS}
    cases = [
        (b'{"prompt": "a", ', 400, "malformed JSON"),
        ({**ok, "prompt": "a photo of <nosuch>"}, 400, "not a concept of version"),
        ({**ok, "concept": "nosuch"}, 400, "not a concept of version"),
        ({**ok, "steps": 10_000}, 400, "max_steps"),
        ({**ok, "num_images": 10_000}, 400, "max_images"),
        ({**ok, "size": 4096}, 400, "pixels only"),
        ({**ok, "prompt": "a red star " * 40}, 400, "tokenizer takes at most"),
        ({**ok, "references": [base64.b64encode(b"not an image").decode()]}, 400, "not a base64 PNG"),
        ({**ok, "references": ["%%% not base64 %%%"]}, 400, "not a base64 PNG"),
        (json.dumps({**ok, "negative_prompt": "x" * MAX_BODY_BYTES}).encode(), 413, "max_body_bytes"),
    ]
    for body, status, words in cases:
        got, answer, _ = call(url, "/generate", body)
        assert (got, words in answer.get("detail", "")) == (status, True), (
            body if len(str(body)) < 200 else "",
            answer,
        )
        assert "\n" not in answer["detail"]
    status, answer, headers = call(url, "/generate", {**ok, "concept": a, "num_images": 2, "references": [_png_b64()]})
    assert status == 200 and len(answer["images"]) == 2 and headers["x-lfsd-model-version"] == answer["version"]
    assert a in answer["concepts"] and headers["x-lfsd-concepts"] == ",".join(answer["concepts"])
    assert call(url, "/health")[0] == 200 and served["proc"].poll() is None
    together = threading.Barrier(4)

    def one(k: int, out: list) -> None:
        together.wait()
        out.append(call(url, "/generate", {**ok, "seed": k, "num_images": 2}))

    answers: list = []
    threads = [threading.Thread(target=one, args=(k, answers)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [a[0] for a in answers] == [200] * 4
    assert max(a[1]["batch_images"] for a in answers) > 2  # two requests' images in one denoising batch
    status, spec, _ = call(url, "/openapi.json")
    assert status == 200 and "/generate" in spec["paths"]
    with urllib.request.urlopen(f"{url}/") as page:
        assert b'id="concept"' in page.read()


class AliasWatch:
    """Where `production` points, read every 50 ms from the registry: [(time first seen, version)]."""

    def __init__(self, model_name: str):
        import mlflow

        self.client, self.name = mlflow.MlflowClient(), model_name
        self.changes: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from components.registry.aliases import PRODUCTION, get_alias_version

        while not self._stop.is_set():
            version = get_alias_version(self.name, PRODUCTION, client=self.client)
            if not self.changes or self.changes[-1][1] != version:
                self.changes.append((time.time(), version))
            self._stop.wait(0.05)

    def __enter__(self) -> AliasWatch:
        self._run_once_first()
        self._thread.start()
        return self

    def _run_once_first(self) -> None:
        from components.registry.aliases import PRODUCTION, get_alias_version

        self.changes.append((time.time(), get_alias_version(self.name, PRODUCTION, client=self.client)))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def production_during(self, version: str, start: float, end: float) -> bool:
        """Whether `version` was production at some moment of [start, end]."""
        bounds = [*self.changes, (float("inf"), None)]
        return any(v == version and t < end and nxt > start for (t, v), (nxt, _) in itertools.pairwise(bounds))

    def moved_to(self, version: str, after: float = 0.0) -> float:
        """When the watch first saw `production` on `version` (after `after`), waiting up to 10 s for it."""
        deadline = time.time() + 10
        while time.time() < deadline:
            seen = [t for t, v in list(self.changes) if v == version and t >= after]
            if seen:
                return seen[0]
            time.sleep(0.05)
        raise AssertionError(f"production never moved to {version}: {self.changes}")


def _served_version(url: str, version: str, timeout: float = 120) -> float:
    """Wait until the endpoint serves `version`; the time its replica swapped to it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body, _ = call(url, "/version")
        if status == 200 and body["version"] == version:
            return max(s["at"] for s in body["swaps"] if s["to"] == version)
        time.sleep(0.1)
    raise AssertionError(f"the endpoint did not serve version {version} within {timeout} s: {body}")


def _client(url: str, concept: str, k: int, stop_now: threading.Event, out: list) -> None:
    for i in range(MAX_REQUESTS_PER_CLIENT):
        if stop_now.is_set():
            return
        prompt = f"a photo of <{concept}>" if (i + k) % 2 else "a red star on a white background"
        start = time.time()
        try:
            status, body, headers = call(url, "/generate", {"prompt": prompt, "steps": STEPS, "seed": i})
        except OSError as e:  # no answer at all (refused, reset): a failed request too
            status, body, headers = -1, {"detail": repr(e)}, {}
        out.append((start, time.time(), status, body.get("version"), body.get("concepts"), body.get("detail")))
        out[-1] += (headers.get("x-lfsd-model-version"),)
        stop_now.wait(PAUSE)


def _lfsd(served: dict, prefect_api: str, *args: str) -> None:
    """`lfsd ARGS --workspace WS` as its own process, as a person types it; it must succeed."""
    root = served["ws"].root
    env = cli_env(root, prefect_api, MLFLOW_TRACKING_URI=served["mlflow_uri"])
    cmd = [sys.executable, "-m", "components.cli", *args, "--workspace", str(root)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-4000:])


def test_the_endpoint_follows_production_under_load(served, prefect_api):
    """`lfsd rollback` (2 -> 1), `lfsd promote 2` (1 -> 2), `lfsd forget b` (2 -> 3, version 2 tagged erased)
    while clients draw."""
    url, ws, (a, b) = served["url"], served["ws"], served["names"]
    results: list[tuple] = []
    stop_now = threading.Event()
    clients = [threading.Thread(target=_client, args=(url, a, k, stop_now, results)) for k in range(CLIENTS)]
    moves = {}
    with AliasWatch(ws.params.pipeline.model_name) as watch:
        assert watch.changes[-1][1] == "2"
        for c in clients:
            c.start()
        try:
            time.sleep(1)
            _lfsd(served, prefect_api, "rollback")
            moves["rollback"] = (watch.moved_to("1"), _served_version(url, "1"))
            _lfsd(served, prefect_api, "promote", "2", "--reason", "serve test")
            moves["promote"] = (watch.moved_to("2", moves["rollback"][0]), _served_version(url, "2"))
            _lfsd(served, prefect_api, "forget", b, "--reason", "serve test: erasure request", "--force")
            moves["forget"] = (watch.moved_to("3"), _served_version(url, "3"))
            deadline = time.time() + 60  # each client draws twice more after the erasure reached the endpoint
            while sum(r[0] >= moves["forget"][1] for r in results) < 2 * CLIENTS and time.time() < deadline:
                time.sleep(0.1)
        finally:
            stop_now.set()
            for c in clients:
                c.join(120)
    status, body, _ = call(url, "/version")
    for what, (moved, served_at) in moves.items():
        first = min((r[1] for r in results if r[1] >= moved and r[3] == _to(what)), default=float("nan"))
        print(f"{what}: alias moved -> served {served_at - moved:.2f} s, -> first response {first - moved:.2f} s")
    print(f"{len(results)} requests by {CLIENTS} clients, swaps {body['swaps']}")
    reach = FOLLOW_SECONDS + max(s["load_seconds"] for s in body["swaps"]) + 1.0  # + the registry reads
    failed = [r for r in results if r[2] != 200]
    assert failed == [] and len(results) >= 3 * CLIENTS
    assert all(r[3] == r[6] for r in results)  # the header says the version the body says
    stale = [r for r in results if not watch.production_during(r[3], r[0] - reach, r[1])]
    assert stale == [], (watch.changes, reach)
    erased_at = moves["forget"][1]  # the erasure reached the endpoint: its replica serves version 3
    after = [r for r in results if r[0] >= erased_at]
    assert after and all(r[3] == "3" and b not in r[4] for r in after)
    assert [s for s in body["swaps"] if s["to"] == "2" and s["at"] >= moves["forget"][0]] == []
    status, answer, _ = call(url, "/generate", {"prompt": f"a photo of <{b}>", "steps": STEPS})
    assert status == 400 and "was erased" in answer["detail"]


def _to(move: str) -> str:
    return {"rollback": "1", "promote": "2", "forget": "3"}[move]


def test_with_mlflow_down_the_loaded_version_serves_and_health_says_so(served):
    stop(served["mlflow"])
    deadline = time.time() + 60
    while (health := call(served["url"], "/health")[1])["registry"] == "ok" and time.time() < deadline:
        time.sleep(0.2)
    assert health["status"] == "registry unreachable" and health["version"] == "3" and health["registry_error"]
    assert call(served["url"], "/health")[0] == 200
    status, answer, _ = call(served["url"], "/generate", {"prompt": "a red star", "steps": STEPS})
    assert status == 200 and answer["version"] == "3"
