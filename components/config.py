"""The one place params.yaml becomes typed config. Every section is a frozen dataclass; unknown or
mistyped keys fail loudly here instead of deep inside a training loop."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO_ROOT / "params.yaml"


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    image_size: int = 32


@dataclass(frozen=True)
class ModelConfig:
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_prompt_tokens: int = 16
    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (32, 64, 64)
    unet_channels: tuple[int, ...] = (64, 128)
    unet_attention_head_dim: int = 16
    context_embed_dim: int = 64
    context_tokens: int = 4
    image_size: int = 32


@dataclass(frozen=True)
class PretrainVaeConfig:
    steps: int = 2500
    batch_size: int = 32
    lr: float = 1e-3
    kl_weight: float = 1e-6
    threads: int = 2


@dataclass(frozen=True)
class PretrainBaseConfig:
    steps: int = 9000
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 200
    pool_scenes: int = 40000
    pool_instances: int = 3000
    views_per_instance: int = 5
    context_fraction: float = 0.4
    text_dropout: float = 0.1
    context_dropout: float = 0.1
    threads: int = 2
    checkpoint_every: int = 1000


@dataclass(frozen=True)
class PretrainEvaluatorConfig:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    embed_dim: int = 64
    pool_images: int = 20000
    pool_instances: int = 1500
    views_per_instance: int = 8
    threads: int = 1


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 30
    guidance_scale: float = 3.0


@dataclass(frozen=True)
class EvaluateBaseConfig:
    samples_per_prompt: int = 2
    icgen_instances: int = 24
    icgen_distractors: int = 3
    world_images: int = 512
    retrieval_instances: int = 64


ADAPTERS = ("lora", "full-kv")  # how a task updates the UNet's cross-attention K/V (docs/method.md)


@dataclass(frozen=True)
class TrainingConfig:
    """One customization task (see docs/method.md)."""

    method: str = "lfs"
    steps: int = 200
    batch_size: int = 4
    lr: float = 1e-3
    token_lr: float = 5e-3
    adapter: str = "lora"  # lora (a new peft adapter per task) | full-kv (train the K/V weights, Custom-Diffusion style)
    lora_rank: int = 4
    lambda_kd: float = 1.0
    kd_batch_size: int = 4
    kd_related_classes: int = 2
    kd_teacher_steps: int = 10
    kd_trajectories: int = 16
    kd_refresh_every: int = 50
    kd_templates: tuple[str, ...] = ("a {}",)  # caption templates the relevant subjects are rendered through
    icgen_context_dropout: float = 0.3
    lambda_clora: float = 0.1
    prior_images: int = 16
    prior_batch_size: int = 4
    guidance_scale: float = 3.0
    report_every: int = 25
    seed: int = 0
    class_candidates: tuple[str, ...] = ()  # class words to search for relevant ones (default: the world's)

    def __post_init__(self) -> None:
        if self.adapter not in ADAPTERS:
            raise ValueError(f"training.adapter: expected one of {', '.join(ADAPTERS)}, got {self.adapter!r}")


@dataclass(frozen=True)
class ForgettingConfig:
    images_per_prompt: int = 2
    rcf_seeds: int = 8
    steps: int = 30
    guidance_scale: float = 3.0
    use_references: bool = True  # ICGen at generation time (only for methods trained with it)


@dataclass(frozen=True)
class RayConfig:
    """Ray Train for one task. RAY_ADDRESS (env) points at a cluster; unset = a local Ray in-process."""

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 2  # also the worker's torch/OMP thread count (Ray does not set it)
    max_failures: int = 2  # FailureConfig: a crashed worker restarts from its last reported checkpoint
    checkpoint_every: int = 50  # optimisation steps between resumable checkpoints
    health_check_interval_s: float = 0.2  # RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s blocks every report)


@dataclass(frozen=True)
class GateConfig:
    """Promotion gate: a new version becomes `production` only if every bound holds."""

    max_avg_forgetting: float = 0.15
    min_rcf_preservation: float = 0.80
    min_new_concept_fidelity: float = 0.30


@dataclass(frozen=True)
class PipelineConfig:
    model_name: str = "lfs-diffusion"  # registered model name in MLflow
    experiment: str = "lfsd"
    data_dir: str = "data/concepts"  # versioned concept datasets (DVC)
    checkpoint_dir: str = "checkpoints"  # versioned lifelong checkpoints (DVC)
    inbox: str = "inbox"  # scheduled onboarding picks concept folders up here
    min_shots: int = 3
    max_shots: int = 10
    git_commit: bool = True  # one git commit per onboarded concept


@dataclass(frozen=True)
class Params:
    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain_vae: PretrainVaeConfig = field(default_factory=PretrainVaeConfig)
    pretrain_base: PretrainBaseConfig = field(default_factory=PretrainBaseConfig)
    pretrain_evaluator: PretrainEvaluatorConfig = field(default_factory=PretrainEvaluatorConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    evaluate_base: EvaluateBaseConfig = field(default_factory=EvaluateBaseConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


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


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read params.yaml into `Params`. The model's image size follows the world's."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    params = _build(Params, raw, Path(path).name)
    model = dataclasses.replace(params.model, image_size=params.world.image_size)
    return dataclasses.replace(params, model=model)
