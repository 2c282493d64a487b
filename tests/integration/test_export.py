"""`lfsd export` against a real registry (sqlite MLflow), loaded back with stock diffusers and with how
ComfyUI, A1111/Forge and kohya read files (tests/tool_loaders.py: lycoris-lora for kohya, the others'
rules restated from their source).

A two-concept 'lfs' chain on the SD-1.x-shaped base is registered once. Every format (diffusers, kohya)
merged and not, loaded with `StableDiffusionPipeline.load_lora_weights` + `load_textual_inversion`
(no lfsd code on the loading side), must draw what the registered model draws for the same prompt, seed
and steps without a context (`lfsd generate PROMPT --model models:/...`). The default export must load
in every tool with every key recognised and the weights equal to B @ A, every embedding as one vector.
Broken, erased, full-K/V and unknown versions must fail naming the file or version, exit non-zero and
leave --out absent."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NAME = "lfsd-export-test"
STEPS = 4
SEED = 3
# Max abs pixel difference in [0, 1], a quarter of one 8-bit level (3.9e-3) over the whole sampling loop.
# Measured: stacked/unfused peft vs lfsd's folded K/V 2e-6 on one CPU (Intel), 1.05e-4 on another (AMD EPYC,
# 2026-12-04, the same code: float kernels differ); the merged export 7.6e-6.
TOL = 1e-3
LORA_MATTERS = 1e-2  # tokens without the LoRA draw something at least this far off
CONCEPTS = ["00-byruri", "01-xubyzo"]  # examples/concepts: byruri (cross), xubyzo (heart)
PROMPT = "a <byruri> cross next to a <xubyzo> heart"
CASES = [("diffusers", False), ("diffusers", True), ("kohya", False), ("kohya", True)]
DEFAULT = [("default", False), ("default", True)]  # exported with no --format


@pytest.fixture(scope="module")
def registry(tmp_path_factory, sd_base_dir):
    """(base dir, tracking URI, model name) with version 1 = the chain, registered once."""
    import mlflow

    from components.config import load_params
    from components.lifelong import LifelongModel
    from components.registry.packaging import log_lifelong_model
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    root = tmp_path_factory.mktemp("export")
    base = sd_base_dir  # conftest: the SD-1.x-shaped test base
    cfg = dataclasses.replace(
        load_params().training,
        steps=4,
        lr=0.01,
        batch_size=2,
        kd_batch_size=2,
        kd_trajectories=2,
        kd_teacher_steps=2,
        kd_refresh_every=100,
        report_every=4,
    )
    model = LifelongModel.from_base(base, "lfs")
    last = None
    for k, folder in enumerate(CONCEPTS, start=1):
        concept = read_concept(REPO / "examples" / "concepts" / folder)
        last = root / "checkpoints" / f"{k:02d}-{concept.name}"
        train_task(model, concept, get_method("lfs"), cfg, last)
    del model
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_REGISTRY_URI", uri)
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mp.setenv("MLFLOW_EXPERIMENT_ID", "0")  # set_experiment exports its id: undo() puts back what was there
    mp.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    mlflow.set_experiment(experiment_id=client.create_experiment("export", artifact_location=(root / "art").as_uri()))
    with mlflow.start_run():
        info = log_lifelong_model(
            last, base, registered_model_name=NAME, steps=STEPS, tags={"lfsd.ledger": "byruri,xubyzo"}
        )
    assert str(info.registered_model_version) == "1"
    yield base, uri, root
    while mlflow.active_run():
        mlflow.end_run()
    mp.undo()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def lfsd_image(registry):
    """What `lfsd generate PROMPT --model models:/NAME/1` draws (the registered pyfunc's own model and
    sampler), as floats in [0, 1] before PNG rounding; and the guidance scale it uses."""
    import mlflow

    from components.model.sampling import generate

    inner = mlflow.pyfunc.load_model(f"models:/{NAME}/1").unwrap_python_model()
    image = generate(inner.model.bundle, [PROMPT], [SEED], steps=STEPS, guidance_scale=inner.guidance_scale)[0]
    return (image + 1) / 2, inner.guidance_scale


def run_export(*args: str):
    from typer.testing import CliRunner

    from components.cli import app

    return CliRunner().invoke(app, ["export", *args])


@pytest.fixture(scope="module")
def exports(registry, tmp_path_factory):
    """Each (format, merged) exported once through the CLI, and twice with no --format: {case: folder}."""
    out = {}
    root = tmp_path_factory.mktemp("exports")
    for fmt, merged in CASES + DEFAULT:
        folder = root / f"{fmt}{'-merged' if merged else ''}"
        chosen = [] if fmt == "default" else ["--format", fmt]
        result = run_export(f"models:/{NAME}/1", "--out", str(folder), *chosen, *(["--merged"] if merged else []))
        assert result.exit_code == 0, result.output
        out[(fmt, merged)] = folder
    return out


def _lora_file(folder: Path, fmt: str, stem: str) -> Path:
    """A LoRA of the export: diffusers-format names say so (`.diffusers.safetensors`)."""
    return folder / "lora" / f"{stem}{'.diffusers' if fmt == 'diffusers' else ''}.safetensors"


def _stock(base: Path, folder: Path, fmt: str, merged: bool, lora: bool = True):
    """A stock diffusers pipeline with the exported files loaded as the README says."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from safetensors.torch import load_file

    pipe = StableDiffusionPipeline.from_pretrained(base)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(
        pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    if merged:
        if lora:
            pipe.load_lora_weights(str(_lora_file(folder, fmt, f"{NAME}-v1")), adapter_name="all")
        emb = load_file(folder / "embeddings-merged" / f"{NAME}-v1.safetensors")
        pipe.load_textual_inversion(list(emb.values()), token=list(emb.keys()))
        return pipe
    names = ["byruri", "xubyzo"]
    for n in names:
        if lora:
            pipe.load_lora_weights(str(_lora_file(folder, fmt, n)), adapter_name=n)
        extra = {"token": f"<{n}>"} if fmt in ("kohya", "default") else {}  # A1111 files name the token by the file
        pipe.load_textual_inversion(str(folder / "embeddings" / f"{n}.safetensors"), **extra)
    if lora:
        pipe.set_adapters(names, adapter_weights=[1.0, 1.0])
    return pipe


def _draw(pipe, guidance: float) -> torch.Tensor:
    return pipe(
        PROMPT,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        output_type="pt",
        generator=torch.Generator().manual_seed(SEED),
    ).images[0]


@pytest.mark.parametrize("fmt,merged", CASES, ids=[f"{f}{'-merged' if m else ''}" for f, m in CASES])
def test_stock_diffusers_draws_what_the_registered_model_draws(registry, exports, lfsd_image, fmt, merged):
    base = registry[0]
    want, guidance = lfsd_image
    got = _draw(_stock(base, exports[(fmt, merged)], fmt, merged), guidance)
    diff = (got - want).abs().max().item()
    print(f"{fmt} merged={merged}: max abs diff {diff:.3g}")
    assert diff < TOL


def test_the_loras_matter(registry, exports, lfsd_image):
    """Tokens alone (no LoRA) draw something else: the comparison above can fail."""
    want, guidance = lfsd_image
    got = _draw(_stock(registry[0], exports[("diffusers", False)], "diffusers", False, lora=False), guidance)
    assert (got - want).abs().max().item() > LORA_MATTERS


def _deltas(pipe) -> dict[str, torch.Tensor]:
    """Per adapted layer, the sum over active adapters of scaling * B @ A, as peft holds it."""
    out = {}
    for name, module in pipe.unet.named_modules():
        if hasattr(module, "lora_A") and module.active_adapters:
            out[name] = sum(
                module.scaling[a] * module.lora_B[a].weight @ module.lora_A[a].weight for a in module.active_adapters
            )
    return out


@pytest.mark.parametrize("merged", [False, True], ids=["per-concept", "merged"])
def test_kohya_files_convert_to_the_same_lora_as_diffusers_files(registry, exports, merged):
    """diffusers' kohya conversion of the kohya files gives the same per-layer update as the diffusers
    files, and both equal the checkpoints' sum of B @ A (read straight from the registered artifacts)."""
    import mlflow
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    base = registry[0]
    kohya = _deltas(_stock(base, exports[("kohya", merged)], "kohya", merged))
    plain = _deltas(_stock(base, exports[("diffusers", merged)], "diffusers", merged))
    state, alphas = StableDiffusionPipeline.lora_state_dict(
        str(_lora_file(exports[("kohya", merged)], "kohya", f"{NAME}-v1" if merged else "byruri"))
    )
    assert alphas and all(k.startswith("unet.") for k in state)  # went through the non-diffusers conversion
    assert sorted(kohya) == sorted(plain) and len(kohya) == 32  # 16 cross-attentions x (to_k, to_v)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    ckpts = sorted(p for p in (local / "artifacts").iterdir() if (p / "unet_lora").is_dir())
    assert len(ckpts) == 2
    files = [load_file(p / "unet_lora" / "pytorch_lora_weights.safetensors") for p in ckpts]
    for layer, delta in plain.items():
        torch.testing.assert_close(kohya[layer], delta, atol=1e-6, rtol=0)
        want = sum(f[f"{layer}.lora_B.weight"] @ f[f"{layer}.lora_A.weight"] for f in files)  # alpha = r: scale 1
        torch.testing.assert_close(delta, want, atol=1e-6, rtol=0)
    assert max(d.abs().max().item() for d in plain.values()) > 1e-3


def test_metadata_reads_back(registry, exports):
    """Every file's metadata; the `ss_*`/`modelspec.*` keys as kohya writes them for an SD 1.x base (issue 31
    §5) and the LoRA's `sshs_*` hashes as kohya's own function computes them from the file (§4)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from tests.tool_loaders import a1111_sd_version, kohya_hashes

    for (_fmt, merged), folder in exports.items():
        files = sorted(folder.rglob("*.safetensors"))
        assert len(files) == 4, files  # merged: one LoRA, two per-concept embeddings, one with both
        readme = (folder / "README.md").read_text()
        assert "<byruri>" in readme and "<xubyzo>" in readme and "load_textual_inversion" in readme
        for f in files:
            with safe_open(str(f), framework="pt") as s:
                meta = s.metadata()
            assert all(isinstance(v, str) for v in meta.values())
            both = merged and f.parent.name != "embeddings"
            tokens = "<byruri>,<xubyzo>" if both else f"<{f.name.split('.')[0]}>"
            assert meta["lfsd.token"] == tokens
            words = {"byruri": "cross", "xubyzo": "heart"}
            assert meta["lfsd.class_word"] == ("cross,heart" if both else words[f.name.split(".")[0]])
            assert meta["lfsd.model_name"] == NAME and meta["lfsd.model_version"] == "1"
            assert len(meta["lfsd.base_hash"]) == 64 and meta["ss_sd_model_hash"] == meta["lfsd.base_hash"]
            assert meta["ss_sd_model_name"] == "sd-base" and meta["ss_base_model_version"] == "sd_v1"
            assert meta["ss_v2"] == "False" and a1111_sd_version(meta) == "SD1"
            assert meta["modelspec.sai_model_spec"] == "1.0.1" and meta["modelspec.prediction_type"] == "epsilon"
            assert datetime.datetime.fromisoformat(meta["modelspec.date"]).year >= 2026
            assert meta["modelspec.resolution"] == "64x64"
            assert meta["modelspec.trigger_phrase"] == tokens.replace(",", ", ")
            assert meta["ss_max_train_steps"] == ("8" if both else "4")
            assert all(t in json.loads(meta["ss_tag_frequency"])[meta["ss_output_name"]] for t in tokens.split(","))
            if f.parent.name == "lora":
                assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
                assert meta["modelspec.implementation"] == "diffusers"
                rank = "8" if merged else "4"
                assert (meta["ss_network_dim"], meta["ss_network_alpha"], meta["ss_network_module"]) == (
                    rank,
                    rank,
                    "networks.lora",
                )
                unhashed = {k: v for k, v in meta.items() if not k.startswith("sshs_")}
                assert (meta["sshs_model_hash"], meta["sshs_legacy_hash"]) == kohya_hashes(load_file(f), unhashed)
            else:
                assert meta["modelspec.architecture"] == "stable-diffusion-v1/textual-inversion"
                assert meta["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"


# ---------------------------------------------------------------- other tools (issue 31)

CONCEPT_NAMES = ["byruri", "xubyzo"]
WEIGHT_TOL = 1e-6


@pytest.fixture(scope="module")
def trained(registry):
    """Per concept, read straight from the registered checkpoints: ({module: B @ A}, token vector (D,))."""
    import mlflow
    from safetensors.torch import load_file

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    out = {}
    for name in CONCEPT_NAMES:
        (ckpt,) = [p for p in (local / "artifacts").iterdir() if p.name.endswith(name) and (p / "unet_lora").is_dir()]
        lora = load_file(ckpt / "unet_lora" / "pytorch_lora_weights.safetensors")
        deltas = {  # alpha = r: scale 1
            k.removesuffix(".lora_A.weight"): lora[k.replace("lora_A", "lora_B")] @ lora[k]
            for k in lora
            if k.endswith(".lora_A.weight")
        }
        out[name] = deltas, load_file(ckpt / "learned_embeds.safetensors")[f"<{name}>"].reshape(-1)
    return out


def _weight_error(deltas: dict, want: dict) -> float:
    assert sorted(deltas) == sorted(want)
    return max((deltas[m] - want[m]).abs().max().item() for m in want)


@pytest.mark.parametrize("merged", [False, True], ids=["per-concept", "merged"])
def test_the_default_export_loads_in_every_tool_with_every_key_and_weight(registry, exports, trained, merged):
    """Issue 31 §1: what `lfsd export` writes by default is read by ComfyUI (its key matching) and by
    kohya (lycoris-lora's create_network_from_weights + merge_to) with every key recognised and the applied
    update equal to B @ A; the README names, per tool, the file to use."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    from tests.tool_loaders import comfy_load_lora, comfy_unet_key_map, lycoris_merge

    folder, base = exports[("default", merged)], registry[0]
    groups = {f"{NAME}-v1": CONCEPT_NAMES} if merged else {n: [n] for n in CONCEPT_NAMES}
    assert sorted(p.name for p in (folder / "lora").iterdir()) == sorted(f"{s}.safetensors" for s in groups)
    readme = (folder / "README.md").read_text()
    for stem, names in groups.items():
        path = folder / "lora" / f"{stem}.safetensors"
        lora = load_file(path)
        want = {m: sum(trained[n][0][m] for n in names) for m in trained[names[0]][0]}
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        deltas, ignored = comfy_load_lora(lora, comfy_unet_key_map(unet.state_dict()))
        comfy_err = _weight_error(deltas, want)
        print(f"ComfyUI {stem}: {len(lora) - len(ignored)}/{len(lora)} keys, {len(ignored)} ignored, {comfy_err:.2g}")
        assert ignored == [] and comfy_err <= WEIGHT_TOL
        deltas, recognised, ignored = lycoris_merge(path, unet, CLIPTextModel.from_pretrained(base / "text_encoder"))
        kohya_err = _weight_error(deltas, want)
        print(f"kohya/lycoris {stem}: {len(recognised)}/{len(lora)} keys, {len(ignored)} ignored, {kohya_err:.2g}")
        assert ignored == [] and len(recognised) == len(lora) == 3 * len(want) and kohya_err <= WEIGHT_TOL
    for tool in ("| ComfyUI |", "| A1111 / Forge |", "| kohya sd-scripts (gen_img) |", "| diffusers |"):
        (row,) = [line for line in readme.splitlines() if line.startswith(tool)]
        assert f"lora/{next(iter(groups))}.safetensors" in row and "embeddings/" in row, row


def test_a_diffusers_format_lora_says_so_in_its_name(registry, exports):
    """Issue 31 §1: peft keys are ignored outside diffusers (ComfyUI and kohya recognise none), so such a
    file is named `*.diffusers.safetensors` and the README sends the other tools to the default export."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    from tests.tool_loaders import comfy_load_lora, comfy_unet_key_map, lycoris_merge

    folder, base = exports[("diffusers", False)], registry[0]
    assert sorted(p.name for p in (folder / "lora").iterdir()) == [f"{n}.diffusers.safetensors" for n in CONCEPT_NAMES]
    path = folder / "lora" / "byruri.diffusers.safetensors"
    lora = load_file(path)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    _, ignored = comfy_load_lora(lora, comfy_unet_key_map(unet.state_dict()))
    deltas, recognised, kohya_ignored = lycoris_merge(path, unet, CLIPTextModel.from_pretrained(base / "text_encoder"))
    print(f"diffusers format: ComfyUI {len(ignored)}/{len(lora)} ignored, kohya/lycoris {len(kohya_ignored)} ignored")
    assert len(ignored) == len(kohya_ignored) == len(lora) and recognised == [] and deltas == {}
    (row,) = [line for line in (folder / "README.md").read_text().splitlines() if line.startswith("| ComfyUI |")]
    assert "not this export's LoRA" in row and "lora/byruri.safetensors" in row


@pytest.mark.parametrize(
    "fmt,merged", CASES + DEFAULT, ids=[f"{f}{'-merged' if m else ''}" for f, m in CASES + DEFAULT]
)
def test_every_embedding_is_one_vector_per_token_in_every_tool(registry, exports, trained, fmt, merged):
    """Issue 31 §2: each embedding file reads as ONE vector, the concept's, in kohya's gen_img (rows are
    vectors), A1111/Forge, ComfyUI and diffusers (one token added per concept)."""
    from safetensors.torch import load_file

    from tests.tool_loaders import a1111_embedding, comfy_load_embed, comfy_vectors, kohya_ti_tokens

    folder = exports[(fmt, merged)]
    files = sorted((folder / "embeddings").glob("*.safetensors"))
    assert [f.stem for f in files] == CONCEPT_NAMES
    for f in files:
        want = trained[f.stem][1]
        tokens, rows = kohya_ti_tokens(f)
        (vector,) = a1111_embedding(load_file(f))
        (comfy,) = comfy_vectors(comfy_load_embed(folder / "embeddings", f.stem))
        assert tokens == [f.stem] and all(torch.equal(v, want) for v in (rows[0], vector, comfy))
    if merged:
        tokens, _ = kohya_ti_tokens(folder / "embeddings-merged" / f"{NAME}-v1.safetensors")
        assert tokens == [f"{NAME}-v1"]
    from transformers import CLIPTokenizer

    pipe = _stock(registry[0], folder, fmt, merged, lora=False)
    known = CLIPTokenizer.from_pretrained(registry[0] / "tokenizer").get_vocab()
    added = {t: i for t, i in pipe.tokenizer.get_vocab().items() if t not in known}
    assert sorted(added) == [f"<{n}>" for n in CONCEPT_NAMES]  # one token each, no <byruri>_1 ...
    table = pipe.text_encoder.get_input_embeddings().weight
    assert all(torch.equal(table[added[f"<{n}>"]], trained[n][1]) for n in CONCEPT_NAMES)


@pytest.mark.parametrize("fmt", ["kohya", "diffusers", "default"])
def test_a_merged_export_reaches_every_concept_from_its_own_file(registry, exports, trained, fmt):
    """Issue 31 §3: beside the merged file (diffusers), one embedding file per concept: ComfyUI's
    `embedding:<name>` reaches each concept, A1111/Forge load each (one term per file); the merged file,
    which A1111/Forge refuse, stays out of `embeddings/`."""
    from safetensors.torch import load_file

    from tests.tool_loaders import a1111_embedding, comfy_load_embed, comfy_vectors

    folder = exports[(fmt, True)]
    for name in CONCEPT_NAMES:
        (vector,) = comfy_vectors(comfy_load_embed(folder / "embeddings", name))
        assert torch.equal(vector, trained[name][1])
        assert torch.equal(a1111_embedding(load_file(folder / "embeddings" / f"{name}.safetensors"))[0], vector)
    with pytest.raises(AssertionError, match="multiple terms"):
        a1111_embedding(load_file(folder / "embeddings-merged" / f"{NAME}-v1.safetensors"))


@pytest.mark.parametrize("mask,folders,files", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)], ids=["022", "077"])
def test_the_export_is_readable_as_the_umask_says(registry, tmp_path, mask, folders, files):
    """Issue 31 §6: under umask 022 a service running as another user reads the export in place."""
    import stat

    out = tmp_path / "out"
    old = os.umask(mask)
    try:
        result = run_export(f"models:/{NAME}/1", "--out", str(out), "--merged")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes and all(m == (folders if p.is_dir() else files) for p, m in modes.items()), modes


def test_a_runs_uri_exports_the_same_files(registry, exports, tmp_path):
    import mlflow
    from safetensors.torch import load_file

    run_id = mlflow.MlflowClient().get_model_version(NAME, "1").run_id
    result = run_export(f"runs:/{run_id}/model", "--out", str(tmp_path / "out"), "--format", "kohya")
    assert result.exit_code == 0, result.output
    for f in (exports[("kohya", False)]).rglob("*.safetensors"):
        got, want = load_file(tmp_path / "out" / f.relative_to(exports[("kohya", False)])), load_file(f)
        assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)


# ---------------------------------------------------------------- bad input: clear error, nothing written


def _version_from_copy(registry, name: str, damage) -> str:
    """A new registered version whose source is a copy of version 1's files (no base), damaged by `damage`, its
    index re-recorded after the damage: the checks under test here are the export's own (a file missing, not
    safetensors, a full-K/V task), which come after the hash check (tests/integration/test_version_integrity.py)."""
    import mlflow
    import yaml

    from components.registry.integrity import file_hashes

    client = mlflow.MlflowClient()
    v1 = client.get_model_version(NAME, "1")
    src = Path(client.get_logged_model(v1.source.removeprefix("models:/")).artifact_location.removeprefix("file://"))
    copy = registry[2] / "copies" / name
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("base", "references_*", "code"))
    damage(copy / "artifacts")
    flavor = yaml.safe_load((copy / "MLmodel").read_text())["flavors"]["python_function"]
    paths = {key: spec["path"] for key, spec in flavor["artifacts"].items()}
    index = json.loads((copy / paths["index"]).read_text())
    for key in index["files"]:
        if key in paths and (copy / paths[key]).exists():
            index["files"][key] = file_hashes(copy / paths[key])
    (copy / paths["index"]).write_text(json.dumps(index))
    return str(client.create_model_version(NAME, source=str(copy), run_id=v1.run_id).version)


def _lora(arts: Path) -> Path:  # artifact folders are named after the checkpoint folders
    return arts / "02-xubyzo" / "unet_lora" / "pytorch_lora_weights.safetensors"


def _emb(arts: Path) -> Path:
    return arts / "01-byruri" / "learned_embeds.safetensors"


def _full_kv(arts: Path) -> None:
    ledger = json.loads((arts / "ledger.json").read_text())
    ledger["entries"][1]["adapter"] = "full-kv"
    (arts / "ledger.json").write_text(json.dumps(ledger))


BAD = {  # case: (damage, text the error must contain, exit code)
    "lora-missing": (lambda a: _lora(a).unlink(), "unet_lora/pytorch_lora_weights.safetensors: missing", 1),
    "lora-corrupt": (
        lambda a: _lora(a).write_bytes(b"\x00garbage" * 10),
        "unet_lora/pytorch_lora_weights.safetensors: not a valid safetensors",
        1,
    ),
    "embeddings-missing": (lambda a: _emb(a).unlink(), "learned_embeds.safetensors: missing", 1),
    "embeddings-corrupt": (
        lambda a: _emb(a).write_bytes(_emb(a).read_bytes()[:-7]),
        "learned_embeds.safetensors: not a valid safetensors",
        1,
    ),
    "full-kv": (_full_kv, "xubyzo were learned as full K/V updates", 2),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_broken_or_full_kv_version_is_refused_and_nothing_is_written(registry, tmp_path, case):
    damage, message, code = BAD[case]
    version = _version_from_copy(registry, case, damage)
    out = tmp_path / "out"
    result = run_export(f"models:/{NAME}/{version}", "--out", str(out), "--format", "kohya", "--merged")
    assert result.exit_code == code, result.output
    assert message in result.output and f"models:/{NAME}/{version}" in result.output, result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no staging folder left behind either


def test_an_erased_version_is_refused(registry, tmp_path):
    import mlflow

    client = mlflow.MlflowClient()
    v1 = client.get_model_version(NAME, "1")
    version = str(client.create_model_version(NAME, source=v1.source, run_id=v1.run_id).version)
    client.set_model_version_tag(NAME, version, "lfsd.erased", "byruri")
    client.set_model_version_tag(NAME, version, "lfsd.erasure", "erased on request")
    client.set_registered_model_alias(NAME, "gone", version)
    for uri in (f"models:/{NAME}/{version}", f"models:/{NAME}@gone"):
        out = tmp_path / "out"
        result = run_export(uri, "--out", str(out))
        assert result.exit_code == 2, result.output
        assert f"{NAME} version {version} held byruri, since erased" in result.output
        assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "uri,message",
    [
        (f"models:/{NAME}/99", "no such registered model version"),
        ("models:/no-such-model/1", "no such registered model version"),
        (f"models:/{NAME}@no-such-alias", "no such registered model version"),
        ("s3://bucket/model", "not a registered version URI"),
    ],
    ids=["version", "model", "alias", "scheme"],
)
def test_an_unknown_uri_is_an_error_and_nothing_is_written(registry, tmp_path, uri, message):
    out = tmp_path / "out"
    result = run_export(uri, "--out", str(out))
    assert result.exit_code == 1, result.output
    assert uri in result.output and message in result.output, result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_out_must_be_new_or_empty(registry, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = run_export(f"models:/{NAME}/1", "--out", str(tmp_path / "full"))
    assert result.exit_code == 1 and "not an empty folder" in result.output, result.output
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    result = run_export(f"models:/{NAME}/1", "--out", str(tmp_path / "empty"), "--format", "nope")
    assert result.exit_code == 2 and "--format" in result.output
    result = run_export(f"models:/{NAME}/1", "--out", str(tmp_path / "empty"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["README.md", "embeddings", "lora"]
    assert (tmp_path / "empty" / "lora" / "byruri.safetensors").is_file()  # the default: kohya keys
