"""The read side of `lfsd export`: one registered version's concepts, fetched and checked.

Why it reads so little: a version's concepts are its task checkpoints' LoRA and token files; the base is named
by the ledger's hash, so only `MLmodel`, the ledger, the index, those files and (for the architecture and
prediction tags) the base's `unet/config.json` and `scheduler/scheduler_config.json`, from this version or the
one storing them, are downloaded, never the base's weights or the reference photos.
Everything is checked here, before export.py writes a byte: an unknown URI, a missing or unreadable
file (named by its path inside the model) is an ExportError; an erased version or a full-K/V task an
ExportRefused. A full-K/V task changed the K/V weights themselves (a full-rank delta, not a LoRA), so
no LoRA file reproduces the version, and exporting the other concepts alone would draw something else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from components.registry import lora_formats as lf
from components.registry.version_files import ExportError, ExportRefused, VersionFiles, resolve_version

SD_DOWN = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
SD_UP = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3


@dataclass
class ConceptExport:
    name: str
    token: str
    class_word: str
    task: int
    lora: lf.LoraPairs  # scale folded into B
    embedding: object  # (D,) tensor
    steps: int | None

    def summary(self) -> dict:
        return {
            "name": self.name,
            "token": self.token,
            "class_word": self.class_word,
            "task": self.task,
            "rank": lf.rank_of(self.lora),
            "steps": self.steps,
        }


@dataclass
class VersionExport:
    uri: str
    model_name: str
    model_version: str
    base: dict  # name, hash, ss_version, architecture, resolution, prediction_type
    concepts: list[ConceptExport] = field(default_factory=list)
    steps: int | None = None  # the version's sampling defaults (model_config), for the README
    guidance_scale: float | None = None

    @property
    def stem(self) -> str:
        """File stem of merged files: `<model>-v<version>` (a run's model: `run-<id>`)."""
        return safe_name(f"{self.model_name}-v{self.model_version}" if self.model_version else self.model_name)


def safe_name(text: str) -> str:
    """`text` as a file stem every OS and tool accepts (concept names already are; model names may not be)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "lfsd"


def _read_safetensors(path: Path, label: str) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file; anything unreadable is an ExportError naming `label`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            # safe_open is not a dict: it has keys(), no __iter__
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 (safe_open is not iterable)
    except Exception as e:
        raise ExportError(
            f"{label}: not a valid safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from e


def base_info(name: str, base_hash: str, unet_config: dict | None, scheduler_config: dict | None = None) -> dict:
    """What the metadata says of the base. The kohya/modelspec architecture comes from the UNet's block
    layout: SD 1.x's (cross-attention width 1024: 2.x), else lfsd's own world base, whose LoRA keys only
    load onto that base; the prediction type (kohya's `v_parameterization`) from the scheduler's config."""
    cfg = unet_config or {}
    prediction = scheduler_config.get("prediction_type", "epsilon") if scheduler_config else None
    sd = (
        cfg.get("down_block_types") == SD_DOWN
        and cfg.get("up_block_types") == SD_UP
        and not cfg.get("addition_embed_type")
    )
    if sd and cfg.get("cross_attention_dim") == 1024:
        version, arch = "sd_v2", "stable-diffusion-v2-512"
    elif sd:
        version, arch = "sd_v1", "stable-diffusion-v1"
    else:
        version, arch = ("lfsd_world", "lfsd-world") if cfg else ("unknown", "unknown")
    resolution = int(cfg["sample_size"]) * 8 if sd and cfg.get("sample_size") else None
    return {
        "name": name,
        "hash": base_hash,
        "ss_version": version,
        "architecture": arch,
        "resolution": resolution,
        "prediction_type": {"v_prediction": "v", "epsilon": "epsilon"}.get(prediction or ""),
    }


def read_version(uri: str, work: Path) -> VersionExport:
    """Everything the export writes, read and checked: the version (not erased), its ledger (no full-K/V
    task), per concept its LoRA (peft keys, one scale) and its token. Downloads go to `work`."""
    from components.registry.pyfunc import BASE_KEY
    from components.registry.shared_artifacts import INDEX_KEY, read_index

    pinned, model_name, version = resolve_version(uri)
    arts = VersionFiles(pinned, Path(work))
    flavor, specs, paths = _read_mlmodel(uri, arts)
    ledger = _read_ledger(uri, arts, paths)
    index = read_index(arts.get(paths[INDEX_KEY]) if INDEX_KEY in paths else None)

    def locate(key: str) -> tuple[VersionFiles, str] | None:  # in this model, or in the version storing it
        if key in paths:
            return arts, f"{paths[key]}/"
        if key in index["shared"]:
            (scratch := Path(work) / "shared" / key).mkdir(parents=True, exist_ok=True)
            return VersionFiles(index["shared"][key]["uri"], scratch), ""
        return None

    config = flavor.get("config") or {}
    base_uri = (specs.get(BASE_KEY) or {}).get("uri") or BASE_KEY
    base = locate(BASE_KEY)
    configs = [
        base[0].get(f"{base[1]}{path}", required=False) if base is not None else None
        for path in ("unet/config.json", "scheduler/scheduler_config.json")
    ]
    unet_cfg, scheduler_cfg = (json.loads(f.read_text()) if f else None for f in configs)
    out = VersionExport(
        uri,
        model_name,
        version,
        base_info(Path(str(base_uri)).name or BASE_KEY, ledger.base_hash, unet_cfg, scheduler_cfg),
        steps=config.get("steps"),
        guidance_scale=config.get("guidance_scale"),
    )
    for entry in ledger.entries:
        found = locate(entry.checkpoint)
        if found is None:
            raise ExportError(
                f"{uri}: concept {entry.name!r}: its checkpoint artifact {entry.checkpoint!r} is not in "
                f"the model (erased or damaged)"
            )
        out.concepts.append(_read_concept(uri, entry, *found))
    return out


def _read_mlmodel(uri: str, arts: VersionFiles) -> tuple[dict, dict, dict[str, str]]:
    """The pyfunc flavor of the version's MLmodel, its artifact specs and their paths; refused unless it
    names a ledger (an lfsd model)."""
    import yaml

    from components.registry.pyfunc import LEDGER_KEY

    try:
        mlmodel = yaml.safe_load(arts.get("MLmodel").read_text())
        flavor = mlmodel["flavors"]["python_function"]
        specs = flavor.get("artifacts") or {}
        paths = {key: spec["path"] for key, spec in specs.items()}
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"{uri}: MLmodel: not an lfsd model ({e})") from e
    if LEDGER_KEY not in paths:
        raise ExportError(f"{uri}: MLmodel names no `{LEDGER_KEY}` artifact: not an lfsd model")
    return flavor, specs, paths


def _read_ledger(uri: str, arts: VersionFiles, paths: dict[str, str]):
    """The version's ledger; refused when empty or when a task was learned as a full K/V update."""
    from components.lifelong.ledger import Ledger
    from components.registry.pyfunc import LEDGER_KEY

    try:
        ledger = Ledger.read(arts.get(paths[LEDGER_KEY]))
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"{uri}: {paths[LEDGER_KEY]}: not a valid ledger ({e})") from e
    if not ledger.entries:
        raise ExportError(f"{uri}: the ledger lists no concepts")
    full = [e.name for e in ledger.entries if e.adapter != "lora"]
    if full:
        raise ExportRefused(
            f"{uri}: concept(s) {', '.join(full)} were learned as full K/V updates (training.adapter: full-kv): "
            f"such a task changed the cross-attention K/V weights themselves (a full-rank delta, not a LoRA), so "
            f"no LoRA file reproduces this version; export a version whose concepts were all learned with "
            f"adapter: lora"
        )
    return ledger


def _read_concept(uri: str, entry, store: VersionFiles, folder: str) -> ConceptExport:
    """One concept's LoRA pairs, token vector and training steps from its checkpoint artifact."""
    from components.lifelong.checkpoint import EMBEDS_FILE, LORA_DIR, LORA_WEIGHTS, TRAINING_FILE

    lora_path = f"{folder}{LORA_DIR}/{LORA_WEIGHTS}"
    emb_path = f"{folder}{EMBEDS_FILE}"
    tensors, meta = _read_safetensors(store.get(lora_path), f"{uri}: {lora_path}")
    try:
        config_json = meta.get("lora_adapter_metadata")
        pairs = lf.peft_pairs(tensors, lf.lora_scale(json.loads(config_json) if config_json else None))
    except (lf.LoraFormatError, ValueError, KeyError) as e:
        raise ExportError(f"{uri}: {lora_path}: not an lfsd LoRA ({e})") from e
    embeds, _ = _read_safetensors(store.get(emb_path), f"{uri}: {emb_path}")
    vector = embeds.get(entry.token)
    if vector is None or vector.numel() == 0 or (vector.ndim > 1 and vector.shape[0] != 1):
        raise ExportError(
            f"{uri}: {emb_path}: holds no single embedding for {entry.token} (keys: {', '.join(embeds) or 'none'})"
        )
    steps = None
    training = store.get(f"{folder}{TRAINING_FILE}", required=False)
    if training is not None:
        try:
            steps = int(json.loads(training.read_text()).get("steps"))
        except (ValueError, TypeError, AttributeError):
            steps = None
    return ConceptExport(entry.name, entry.token, entry.class_word, entry.task, pairs, vector.reshape(-1), steps)
