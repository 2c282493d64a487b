"""The HTTP face: one Ray Serve deployment with a FastAPI ingress (so /docs and /openapi.json come with it).

    POST /generate   a request -> its images, the version and concepts that drew them (field and headers)
    GET  /health     200 while a version serves (the registry's reachability a field), 503 while none does
    GET  /version    what the serving version is: number, concepts, defaults, the last swaps, whether
                     the version swapped out is still alive (`retired_alive`)
    GET  /           the page for people (page.py)

Each replica follows `production` on its own (follow.py) and merges concurrent requests with Ray Serve's
`@serve.batch` (batch.py says how a batch is drawn). Drawing runs on one worker thread, so the event loop
keeps answering /health and queueing requests while the UNet works.
"""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve

from components.serving.batch import headers, run_batch
from components.serving.page import PAGE
from components.serving.request import BadRequest, GenerateRequest, parse_body

api = FastAPI(
    title="lfsd serve",
    description="Images from the lifelong model's `production` version, followed as it moves.",
)
_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GenerateRequest.model_json_schema()}},
    }
}


def _refuse(e: BadRequest) -> JSONResponse:
    return JSONResponse({"detail": e.reason}, status_code=e.status)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to pass `limit` bytes: from its Content-Length, or
    while it streams in."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"body of {declared} bytes is over serving.max_body_bytes ({limit})", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"body of more than {limit} bytes is over serving.max_body_bytes ({limit})", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _follower(settings: dict):
    """The registry client (fails fast when the registry is down, instead of MLflow's minutes of retries),
    the placement `runtime` asks for, and a Follower on them."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.get("registry_timeout_s", 5))
    import mlflow
    import torch

    from components.config import RuntimeConfig
    from components.device import placement
    from components.serving.follow import Follower

    runtime = RuntimeConfig(**settings["runtime"])
    torch.set_num_threads(runtime.threads)
    uri = settings["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return Follower(client, settings["model_name"], placement(runtime), settings["serving"]["follow_seconds"])


@serve.deployment(name="lfsd")
@serve.ingress(api)
class Endpoint:
    def __init__(self, settings: dict):
        from components.config import ServingConfig

        self.cfg = ServingConfig(**settings["serving"])
        self.follower = _follower(settings).start()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lfsd-draw")
        self._batch.set_max_batch_size(self.cfg.max_batch_size)
        self._batch.set_batch_wait_timeout_s(self.cfg.batch_wait_seconds)

    @api.post("/generate", openapi_extra=_BODY_SCHEMA, summary="Draw images with the production version")
    async def generate(self, request: Request) -> JSONResponse:
        try:
            req = parse_body(await read_limited(request, self.cfg.max_body_bytes), self.cfg)
        except BadRequest as e:
            return _refuse(e)
        result = await self._batch(req)
        if isinstance(result, BadRequest):
            return _refuse(result)
        return JSONResponse(result, headers=headers(result))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)  # both set from params.yaml in __init__
    async def _batch(self, reqs: list[GenerateRequest]) -> list:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._draw, reqs)

    def _draw(self, reqs: list[GenerateRequest]) -> list:
        return run_batch(self.follower.wait_current(self.cfg.load_wait_seconds), reqs)

    @api.get("/health", summary="Whether a version serves and the registry can be seen")
    async def health(self) -> JSONResponse:
        status, body = self.follower.health()
        return JSONResponse(body, status_code=status)

    @api.get("/version", summary="The serving version: number, concepts, defaults, the last swaps")
    async def version(self) -> JSONResponse:
        current = self.follower.current()
        if current is None:
            return JSONResponse({"detail": "no version is loaded yet (see GET /health)"}, status_code=503)
        return JSONResponse(
            current.describe() | {"swaps": self.follower.swaps, "retired_alive": self.follower.retired_alive()}
        )

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(self) -> HTMLResponse:
        return HTMLResponse(PAGE)

    def __del__(self):
        self.follower.stop()
