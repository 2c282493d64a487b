"""Typed config: the sections of params.yaml as frozen dataclasses, with their types and validation.

params.yaml is the ONLY source of values: no field here has a default. `load_params` reads the
project's params.yaml and lays an override file (a workspace's own params.yaml) over it, key by key,
so an override names only what differs. Unknown or mistyped keys fail loudly here, not deep inside a
training loop. One value is derived rather than read: `model.image_size` is `world.image_size`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "params.yaml"


@dataclass(frozen=True)
class WorldConfig:
    seed: int
    image_size: int


@dataclass(frozen=True)
class ModelConfig:
    text_hidden_size: int
    text_layers: int
    text_heads: int
    max_prompt_tokens: int
    latent_channels: int
    vae_channels: tuple[int, ...]
    unet_channels: tuple[int, ...]
    unet_attention_head_dim: int
    context_embed_dim: int
    context_tokens: int
    image_size: int  # derived: world.image_size (see DERIVED)


@dataclass(frozen=True)
class PretrainVaeConfig:
    steps: int
    batch_size: int
    lr: float
    kl_weight: float
    threads: int


@dataclass(frozen=True)
class PretrainBaseConfig:
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    pool_scenes: int
    pool_instances: int
    views_per_instance: int
    context_fraction: float
    text_dropout: float
    context_dropout: float
    threads: int
    checkpoint_every: int


@dataclass(frozen=True)
class PretrainEvaluatorConfig:
    steps: int
    batch_size: int
    lr: float
    embed_dim: int
    pool_images: int
    pool_instances: int
    views_per_instance: int
    threads: int


@dataclass(frozen=True)
class SamplingConfig:
    steps: int
    guidance_scale: float


@dataclass(frozen=True)
class EvaluateBaseConfig:
    samples_per_prompt: int
    icgen_instances: int
    icgen_distractors: int
    world_images: int
    retrieval_instances: int


PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_SPREAD", "STRICT_PACK")  # Ray placement groups
ADAPTERS = ("lora", "full-kv")  # how a task updates the UNet's cross-attention K/V (docs/method.md)


@dataclass(frozen=True)
class TrainingConfig:
    """One customization task (see docs/method.md)."""

    method: str
    steps: int
    batch_size: int
    lr: float
    token_lr: float
    adapter: str  # lora (a new peft adapter per task) | full-kv (train the K/V weights, Custom-Diffusion style)
    lora_rank: int
    lambda_kd: float
    kd_batch_size: int
    kd_related_classes: int
    kd_previous_subjects: int  # at most this many earlier concepts in a task's relevant prompts (bounded in k)
    kd_teacher_steps: int
    kd_trajectories: int
    kd_refresh_every: int
    kd_templates: tuple[str, ...]  # caption templates the relevant subjects are rendered through
    kd_context_images: int  # lfs-context-kd: teacher samples of an earlier concept embedded as its KD context
    icgen_context_dropout: float
    lambda_clora: float
    prior_images: int
    prior_batch_size: int
    guidance_scale: float
    report_every: int
    seed: int
    gradient_checkpointing: bool  # UNet activations recomputed in backward (memory at real size, for time)
    class_candidates: tuple[str, ...]  # class words to search for relevant ones (empty: the world's)

    def __post_init__(self) -> None:
        if self.adapter not in ADAPTERS:
            raise ValueError(f"training.adapter: expected one of {', '.join(ADAPTERS)}, got {self.adapter!r}")


@dataclass(frozen=True)
class ForgettingConfig:
    images_per_prompt: int
    rcf_seeds: int
    steps: int
    guidance_scale: float
    use_references: bool  # ICGen at generation time (only for methods trained with it)
    sample_size: int  # bounded protocol: earlier concepts scored per step besides the new one (0: every one, always)
    full_every: int  # bounded protocol: every N-th task scores every concept (0: never on a schedule)


@dataclass(frozen=True)
class RayConfig:
    """Ray Train for one task. RAY_ADDRESS (env) points at a cluster; unset = a local Ray in-process."""

    enabled: (
        bool  # false: the pipeline trains in the onboarding process (same loop; no Ray, no resume of a killed training)
    )
    num_workers: int
    use_gpu: bool
    cpus_per_worker: int  # also the worker's torch/OMP thread count (Ray does not set it)
    max_failures: int  # FailureConfig: a crashed worker restarts from its last reported checkpoint
    checkpoint_every: int  # optimisation steps between resumable checkpoints
    health_check_interval_s: float  # RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s blocks every report)
    worker_resources: dict[str, float]  # custom Ray resources each worker asks for (nodes declare them at `ray start`)
    placement_strategy: str  # ScalingConfig.placement_strategy: PACK | SPREAD | STRICT_SPREAD | STRICT_PACK
    keep_workers: (
        bool  # a sequence / inbox tick trains on one worker group for all its tasks (components/ray_train/warm.py)
    )
    storage_path: (
        str  # RunConfig.storage_path (resumable checkpoints): "" = <state dir>/ray_results; shared on a cluster
    )

    def __post_init__(self) -> None:
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            raise ValueError(
                f"ray.placement_strategy: expected one of {', '.join(PLACEMENT_STRATEGIES)}, "
                f"got {self.placement_strategy!r}"
            )


@dataclass(frozen=True)
class GateConfig:
    """Promotion gate: a new version becomes `production` only if every bound holds."""

    max_avg_forgetting: float  # avg_forgetting of the sequence so far
    min_rcf_similarity: float  # this step's rcf_similarity (paired CLIP-I of theta_k's vs theta_0's class images)
    min_new_concept_fidelity: float  # this step's fidelity of the concept just learned, A[k][k]
    max_confusion: float  # this step's mean confusion over the concepts it scored (evaluation/confusion.py)


@dataclass(frozen=True)
class NearnessConfig:
    """The check of a new concept's shots against the chain's concepts before it is trained (issue 32 §3)."""

    warn_above: float  # reference-vector cosine above which an existing concept is "near" (warned, scored in full)
    duplicate_within: float  # signature mean absolute difference (0-255) within which a shot is a photo again
    show: int  # how many near concepts the terminal, the run and the card name


@dataclass(frozen=True)
class ForgetConfig:
    retrain_later: bool  # relearn the concepts after an erased one (components/erasure/relearn.py)


@dataclass(frozen=True)
class PipelineConfig:
    model_name: str  # registered model name in MLflow
    experiment: str
    data_dir: str  # versioned concept datasets (DVC)
    checkpoint_dir: str  # versioned lifelong checkpoints (DVC)
    inbox: str  # scheduled onboarding picks concept folders up here
    inbox_settle_seconds: float  # a folder is picked up only once nothing in it changed for this long
    min_shots: int
    max_shots: int


@dataclass(frozen=True)
class RuntimeConfig:
    threads: int  # torch threads of in-process work: generation, evaluation, benchmarks, the in-process launcher
    device: str  # auto | cpu | cuda | cuda:N | mps (components/device.py checks it against the machine)
    precision: str  # fp32 | bf16 | fp16: the frozen weights' dtype; trainable tensors stay fp32

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"runtime.precision: expected fp32, bf16 or fp16, got {self.precision!r}")
        d = str(self.device)
        if d not in ("auto", "cpu", "cuda", "mps") and not (d.startswith("cuda:") and d[5:].isdigit()):
            raise ValueError(f"runtime.device: expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


@dataclass(frozen=True)
class ServingConfig:
    """`lfsd serve`: the HTTP endpoint on Ray Serve that follows `production` (docs/operations.md, "Serving")."""

    host: str  # where the HTTP proxy listens (127.0.0.1: this machine only)
    port: int
    follow_seconds: float  # how often each replica asks the registry where `production` points
    load_wait_seconds: float  # a request waits this long for a model while none may serve (first load, erasure)
    replicas: int  # Ray Serve replicas, each with its own copy of the model
    replica_cpus: float  # Ray CPUs each replica asks for
    max_batch_size: int  # requests merged into one denoising batch (@serve.batch)
    batch_wait_seconds: float  # how long a batch waits for more requests before it runs
    max_steps: int
    max_images: int  # images per request
    max_references: int  # ICGen reference images per request
    max_body_bytes: int  # larger bodies get 413

    def __post_init__(self) -> None:
        for key in ("follow_seconds", "replicas", "max_batch_size", "max_steps", "max_images", "max_body_bytes"):
            if getattr(self, key) <= 0:
                raise ValueError(f"serving.{key}: expected a positive number, got {getattr(self, key)!r}")


@dataclass(frozen=True)
class SdBaseConfig:
    """What `lfsd init --base` writes into a new workspace's params.yaml when the base is a Stable
    Diffusion folder: the KD prompts must be captions that base knows, not the embedded world's."""

    kd_templates: tuple[str, ...]
    class_candidates: tuple[str, ...]


@dataclass(frozen=True)
class Params:
    world: WorldConfig
    model: ModelConfig
    pretrain_vae: PretrainVaeConfig
    pretrain_base: PretrainBaseConfig
    pretrain_evaluator: PretrainEvaluatorConfig
    sampling: SamplingConfig
    evaluate_base: EvaluateBaseConfig
    training: TrainingConfig
    forgetting: ForgettingConfig
    nearness: NearnessConfig
    ray: RayConfig
    gate: GateConfig
    forget: ForgetConfig
    pipeline: PipelineConfig
    runtime: RuntimeConfig
    sd_base: SdBaseConfig
    serving: ServingConfig


DERIVED = {("model", "image_size"): ("world", "image_size")}  # (section, key) <- (section, key)


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where}: expected a list, got {value!r}")
        (inner, _) = typing.get_args(tp)
        return tuple(_coerce(inner, v, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise TypeError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _build(cls, raw: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise KeyError(f"{where}: unknown keys {sorted(unknown)}")
    missing = known - set(raw)
    if missing:
        raise KeyError(f"{where}: missing keys {sorted(missing)} (params.yaml must give every value)")
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value or {}, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(tp, value, f"{where}.{name}")
    return cls(**kwargs)


def replace_field(section, key: str, value, where: str):
    """`section` (one params.yaml block) with `key` set to `value`, coerced and validated exactly as
    params.yaml values are (a development override must not get past checks the file would fail)."""
    raw = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)} | {key: value}
    return _build(type(section), raw, where)


def with_overrides(params: Params, items, sections: tuple[str, ...]) -> Params:
    """`SECTION.KEY=VALUE` items (a command's `--set`) laid over `params`, each value YAML, coerced and
    validated as params.yaml's are; only `sections` may be overridden, anything else is refused."""
    for item in items:
        name, sep, value = item.partition("=")
        section, _, key = name.partition(".")
        if not sep or section not in sections:
            raise ValueError(f"--set {item!r}: expected " + ", ".join(f"{s}.KEY=VALUE" for s in sections))
        current = getattr(params, section)
        if key not in {f.name for f in dataclasses.fields(current)}:
            raise ValueError(f"--set {item!r}: params.yaml section {section!r} has no key {key!r}")
        params = dataclasses.replace(params, **{section: replace_field(current, key, yaml.safe_load(value), section)})
    return params


def _merge(base: dict, override: dict, where: str) -> dict:
    """`override` laid over `base` one section deep; an unknown section or key is refused."""
    out = {section: dict(values or {}) for section, values in base.items()}
    for section, values in (override or {}).items():
        if section not in out:
            raise KeyError(f"{where}: unknown section {section!r}")
        out[section].update(values or {})
    return out


def _with_derived(raw: dict, where: str) -> dict:
    for (section, key), (src_section, src_key) in DERIVED.items():
        if key in raw.get(section, {}):
            raise KeyError(f"{where}: {section}.{key} is derived from {src_section}.{src_key}; set that instead")
        raw[section][key] = raw[src_section][src_key]
    return raw


def load_params(override: Path | None = None) -> Params:
    """params.yaml, with the file `override` (e.g. a workspace's params.yaml) laid over it."""
    raw = yaml.safe_load(PARAMS_FILE.read_text()) or {}
    where = PARAMS_FILE.name
    if override is not None and Path(override).resolve() != PARAMS_FILE.resolve():
        where = str(override)
        raw = _merge(raw, yaml.safe_load(Path(override).read_text()) or {}, where)
    return _build(Params, _with_derived(raw, where), where)
