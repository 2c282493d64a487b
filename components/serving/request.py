"""What a client may ask of `POST /generate`, checked before any model is touched: the JSON's shape and
types, the limits of params.yaml `serving:`, and reference images that really are images. Each refusal is
a `BadRequest` whose one-line reason goes back to the client as is; nothing here can crash the server.
The checks that need the loaded version (its concepts, its tokenizer, its image size) are in `version_checks.py`."""

from __future__ import annotations

import base64
import binascii
import io
import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.config import ServingConfig


class BadRequest(ValueError):
    """A request the endpoint refuses: `status` (400, 413, 503) and a one-line reason."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status, self.reason = status, reason


class GenerateRequest(BaseModel):
    """The JSON body of `POST /generate` (its schema is the one /docs shows)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    prompt: str = Field(min_length=1, description="What to draw; a learned concept is written <name>.")
    negative_prompt: str = Field("", description="What guidance steers away from (default: nothing).")
    concept: str | None = Field(None, description="A concept of the serving version: its references condition ICGen.")
    seed: int = Field(0, ge=0, description="Sampling seed of the first image; image i uses seed + i.")
    steps: int | None = Field(None, ge=1, description="DDIM steps (default: the version's sampling steps).")
    guidance: float | None = Field(None, ge=0, description="Guidance scale (default: the version's).")
    num_images: int = Field(1, ge=1, description="Images to draw.")
    size: int | None = Field(None, ge=1, description="Image side in pixels; must be the version's when given.")
    references: list[str] | None = Field(None, description="ICGen reference images of your own, base64 PNG/JPEG.")


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def parse_body(body: bytes, cfg: ServingConfig) -> GenerateRequest:
    """Body bytes -> a request within the limits, or BadRequest (413 when over `max_body_bytes`)."""
    if len(body) > cfg.max_body_bytes:
        raise BadRequest(f"body of {len(body)} bytes is over serving.max_body_bytes ({cfg.max_body_bytes})", 413)
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"malformed JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(raw).__name__}")
    try:
        req = GenerateRequest.model_validate(raw)
    except ValidationError as e:
        raise BadRequest(_one_line(e)) from None
    check_limits(req, cfg)
    return req


def check_limits(req: GenerateRequest, cfg: ServingConfig) -> None:
    """The params.yaml bounds that hold whatever version serves."""
    if req.steps is not None and req.steps > cfg.max_steps:
        raise BadRequest(f"steps {req.steps} is over serving.max_steps ({cfg.max_steps})")
    if req.num_images > cfg.max_images:
        raise BadRequest(f"num_images {req.num_images} is over serving.max_images ({cfg.max_images})")
    if req.references is not None and not 1 <= len(req.references) <= cfg.max_references:
        raise BadRequest(f"references: give 1 to {cfg.max_references} images, got {len(req.references)}")


def decode_references(texts: list[str], size: int):
    """base64 images -> (R, 3, size, size) in [-1, 1], as `load_reference_folder` reads a concept's
    folder; BadRequest naming the first one that is not an image."""
    from PIL import Image, UnidentifiedImageError

    from components.model.references import reference_tensor

    images = []
    for i, text in enumerate(texts):
        try:
            image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
            image.load()
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise BadRequest(f"references[{i}] is not a base64 PNG or JPEG image") from None
        images.append(image)
    return reference_tensor(images, size)
