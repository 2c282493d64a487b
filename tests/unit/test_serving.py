"""`lfsd serve`'s pure parts: the swap policy, the request checks that need no model, and a follower whose
registry is down (a real MLflow client on a port where nothing listens)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import pytest

from components.serving.follow import Decision, Follower, Seen, decide
from components.serving.loaded import LoadedVersion
from components.serving.request import BadRequest, decode_references, parse_body


@pytest.fixture
def cfg(params):
    return dataclasses.replace(params.serving, max_steps=10, max_images=4, max_references=2, max_body_bytes=2000)


def _refused(body, cfg) -> BadRequest:
    with pytest.raises(BadRequest) as e:
        parse_body(body if isinstance(body, bytes) else json.dumps(body).encode(), cfg)
    assert "\n" not in e.value.reason
    return e.value


@pytest.mark.parametrize(
    "loaded, seen, expected",
    [
        (None, Seen("1", None, False), Decision(False, "1")),  # first load
        ("1", Seen("1", None, False), Decision(False, None)),  # nothing moved
        ("1", Seen("2", None, False), Decision(False, "2")),  # promote / rollback: load, the old serves meanwhile
        ("2", Seen("3", None, True), Decision(True, "3")),  # forget: the erased one stops now, its successor loads
        ("2", Seen("2", "held x, since erased", True), Decision(True, None)),  # erased and still production
        ("1", Seen("2", "held x, since erased", False), Decision(False, None)),  # never load an erased version
        ("1", Seen(None, None, False), Decision(False, None)),  # no alias: keep serving what is loaded
    ],
)
def test_the_swap_policy(loaded, seen, expected):
    assert decide(loaded, seen) == expected


def test_a_request_within_the_limits_passes(cfg):
    req = parse_body(json.dumps({"prompt": "a <x>", "steps": 10, "num_images": 4, "seed": 3}).encode(), cfg)
    assert (req.prompt, req.steps, req.num_images, req.seed, req.negative_prompt) == ("a <x>", 10, 4, 3, "")


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"steps": 3}, 400, "prompt"),
        ({"prompt": "a", "stpes": 3}, 400, "stpes"),
        ({"prompt": "a", "steps": 11}, 400, "max_steps"),
        ({"prompt": "a", "steps": 0}, 400, "steps"),
        ({"prompt": "a", "num_images": 5}, 400, "max_images"),
        ({"prompt": "a", "references": ["x", "y", "z"]}, 400, "references"),
        ({"prompt": "a" * 3000}, 413, "max_body_bytes"),
    ],
)
def test_bad_requests_are_refused_in_one_line(cfg, body, status, words):
    refused = _refused(body, cfg)
    assert refused.status == status and words in refused.reason


def test_a_reference_that_is_not_an_image_is_refused_and_a_png_is_read():
    from PIL import Image

    with pytest.raises(BadRequest, match=r"references\[1\] is not"):
        decode_references([_png(), base64.b64encode(b"GIF? no").decode()], 8)
    assert tuple(decode_references([_png(), _png()], 8).shape) == (2, 3, 8, 8)
    assert Image  # PIL is what reads them


def _png() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (5, 7), (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_follower_whose_registry_is_down_keeps_its_version_and_says_so(monkeypatch):
    import mlflow

    from tests.integration.services import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    follower = Follower(mlflow.MlflowClient(uri, uri), "m", None, 0.1, log=lambda m: None)
    assert follower.health()[0] == 503  # nothing loaded yet
    held = LoadedVersion("m", "4", pyfunc=None)
    follower._swap(held)
    follower.poll_once()
    status, body = follower.health()
    assert follower.current() is held and status == 200
    assert body["status"] == "registry unreachable" and body["registry"] == "unreachable" and body["version"] == "4"
    assert body["registry_error"] and "\n" not in body["registry_error"]
    assert follower.wait_current(0.01) is held


class _Weights:
    """Stands for a loaded pyfunc whose modules reference each other (as torch modules with hooks can): only
    the cycle collector frees it, so a follower that merely drops its reference leaves it alive."""

    def __init__(self):
        self.me = self
        self.data = bytearray(8 << 20)


def test_a_swap_leaves_no_object_of_the_old_version_alive():
    import gc
    import weakref

    gc.disable()  # no automatic collection between the swap and the check: the follower's own must do it
    try:
        follower = Follower(None, "m", None, 1.0, log=lambda m: None)
        follower._swap(LoadedVersion("m", "1", pyfunc=_Weights()))
        old = weakref.ref(follower.current().pyfunc)
        follower._swap(LoadedVersion("m", "2", pyfunc=_Weights()))
        assert old() is None, "version 1 survived its swap"
        assert follower._retired is None and follower.current().version == "2"
    finally:
        gc.enable()


def test_a_version_a_batch_still_holds_is_released_at_the_next_poll(monkeypatch):
    import gc
    import weakref

    import mlflow

    from tests.integration.services import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the release must not wait for the registry
    gc.disable()
    try:
        follower = Follower(mlflow.MlflowClient(uri, uri), "m", None, 1.0, log=lambda m: None)
        follower._swap(LoadedVersion("m", "1", pyfunc=_Weights()))
        in_flight = follower.current()  # a batch drawing with version 1 while 2 swaps in
        follower._swap(LoadedVersion("m", "2", pyfunc=_Weights()))
        old = weakref.ref(in_flight.pyfunc)
        assert old() is not None and follower.retired_alive()  # still drawing: not released under it
        del in_flight  # the batch ends
        follower.poll_once()
        assert old() is None and follower._retired is None and not follower.retired_alive()
    finally:
        gc.enable()
