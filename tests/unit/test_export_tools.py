"""What kohya, A1111/Forge and ComfyUI read from the export's metadata and layouts (issue 31), without a
registry: hashes on an SD-1.5-sized LoRA (> 1 MiB), the metadata kohya writes for SD 1.x and SD 2.x
bases, and embeddings read as one vector. The tools' rules are in tests/tool_loaders.py."""

from __future__ import annotations

import datetime

import pytest
import torch

from components.registry import export_source
from components.registry import lora_formats as lf
from tests.tool_loaders import a1111_embedding, a1111_sd_version, kohya_hashes

SD_DOWN, SD_UP = export_source.SD_DOWN, export_source.SD_UP
SD15_KV = [(320, 768)] * 10 + [(640, 768)] * 10 + [(1280, 768)] * 12  # (out, in) of SD 1.5's 32 attn2 to_k/to_v


def _sd15_sized_pairs(rank: int = 8) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        f"block_{i}.attn2.to_{'kv'[i % 2]}": (
            torch.randn(rank, d_in, generator=g) * 0.01,
            torch.randn(d_out, rank, generator=g) * 0.01,
        )
        for i, (d_out, d_in) in enumerate(SD15_KV)
    }


def _base(cross_attention_dim: int = 768, prediction: str = "epsilon") -> dict:
    unet = {
        "down_block_types": SD_DOWN,
        "up_block_types": SD_UP,
        "cross_attention_dim": cross_attention_dim,
        "sample_size": 64,
    }
    return export_source.base_info("base", "0" * 64, unet, {"prediction_type": prediction})


def _common(base: dict, kind: str = "lora") -> dict[str, str]:
    return lf.common_metadata(
        title="dog",
        tokens=["<dog>"],
        class_words=["dog"],
        base=base,
        model_name="m",
        model_version="1",
        steps=[4],
        kind=kind,
        date=datetime.datetime(2026, 12, 7, 11, 0).isoformat(),
    )


def test_sshs_hashes_are_kohyas_on_a_file_over_one_mib(tmp_path):
    """Issue 31 §4: kohya hashes the tensors saved WITH the `ss_*` metadata (train_util's
    precalculate_safetensors_hashes); past 1 MiB the legacy hash sees that header's length."""
    from safetensors.torch import save_file

    pairs = _sd15_sized_pairs()
    tensors = lf.to_kohya(pairs)
    common = {"ss_output_name": "dog", "ss_v2": "False", "modelspec.title": "dog", "lfsd.token": "<dog>"}
    meta = lf.lora_metadata(common, pairs, tensors, [{"name": "dog"}])
    save_file(tensors, str(tmp_path / "dog.safetensors"), metadata=meta)
    assert (tmp_path / "dog.safetensors").stat().st_size > 1024 * 1024
    want = kohya_hashes(tensors, {k: v for k, v in meta.items() if not k.startswith("sshs_")})
    assert (meta["sshs_model_hash"], meta["sshs_legacy_hash"]) == want
    assert kohya_hashes(tensors, {})[1] != want[1]  # the metadata matters: this test can fail


@pytest.mark.parametrize(
    "width,prediction,version,v2,arch,pred",
    [
        (768, "epsilon", "sd_v1", "False", "stable-diffusion-v1", "epsilon"),
        (1024, "epsilon", "sd_v2", "True", "stable-diffusion-v2-512", "epsilon"),
        (1024, "v_prediction", "sd_v2_v", "True", "stable-diffusion-v2-768-v", "v"),
    ],
    ids=["sd1", "sd2-512", "sd2-768-v"],
)
def test_metadata_is_what_kohya_writes_for_sd1_and_sd2(width, prediction, version, v2, arch, pred):
    """Issue 31 §5: kohya's train_network.py `ss_v2`/`ss_base_model_version` and library/sai_model_spec.py
    (spec 1.0.1, implementation `diffusers` for a LoRA and Stability's repository for an embedding, date,
    prediction type); A1111/Forge's version check then says SD1/SD2, never Unknown."""
    base = _base(width, prediction)
    for kind in ("lora", "textual-inversion"):
        meta = _common(base, kind)
        assert meta["ss_v2"] == v2 and meta["ss_base_model_version"] == version
        assert meta["modelspec.sai_model_spec"] == "1.0.1"
        assert meta["modelspec.architecture"] == f"{arch}/{kind}"
        assert meta["modelspec.implementation"] == (
            "diffusers" if kind == "lora" else "https://github.com/Stability-AI/generative-models"
        )
        assert meta["modelspec.prediction_type"] == pred
        assert datetime.datetime.fromisoformat(meta["modelspec.date"]).year == 2026
        assert a1111_sd_version(meta) == ("SD2" if v2 == "True" else "SD1")


def test_embeddings_are_one_vector_per_token_in_every_layout():
    """Issue 31 §2: (D,) reads in kohya's gen_img as D one-number vectors; (1, D) is one vector there, in
    A1111/Forge and in ComfyUI, whichever layout."""
    e = torch.randn(32)
    for tensors in (lf.ti_diffusers({"<dog>": e}), lf.ti_a1111(e)):
        (value,) = tensors.values()
        assert value.shape == (1, 32)  # kohya: rows are vectors
        assert a1111_embedding(tensors).shape == (1, 32)
