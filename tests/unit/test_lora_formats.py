"""LoRA key layouts and the merged (rank-concatenated) LoRA: exact sums, kohya names diffusers' own
converter maps back, scales folded, hashes as kohya/A1111 compute them from the file."""

from __future__ import annotations

import hashlib

import pytest
import torch

from components.registry import lora_formats as lf

MODULES = [
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v",
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_k",
]


def _peft_state(rank: int, seed: int, out_f: int = 6, in_f: int = 5) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for m in MODULES:
        state[f"{m}.lora_A.weight"] = torch.randn(rank, in_f, generator=g)
        state[f"{m}.lora_B.weight"] = torch.randn(out_f, rank, generator=g)
    return state


def test_concatenated_ranks_add_up_to_the_stacked_adapters_exactly():
    states = [
        (_peft_state(4, 0), {"r": 4, "lora_alpha": 4}),
        (_peft_state(2, 1), {"r": 2, "lora_alpha": 8}),
        (_peft_state(3, 2), {"r": 3, "lora_alpha": 3, "use_rslora": True}),
    ]
    merged = lf.concat_ranks([lf.peft_pairs(s, lf.lora_scale(c)) for s, c in states])
    assert sorted(merged) == sorted(MODULES) and lf.rank_of(merged) == 9
    for m in MODULES:
        a, b = merged[m]
        want = sum(lf.lora_scale(c) * s[f"{m}.lora_B.weight"] @ s[f"{m}.lora_A.weight"] for s, c in states)
        torch.testing.assert_close(b @ a, want, atol=1e-5, rtol=0)


def test_scales():
    assert lf.lora_scale(None) == 1.0 and lf.lora_scale({"r": 4, "lora_alpha": 4}) == 1.0
    assert lf.lora_scale({"r": 4, "lora_alpha": 8}) == 2.0
    assert lf.lora_scale({"r": 4, "lora_alpha": 8, "use_rslora": True}) == 4.0
    with pytest.raises(lf.LoraFormatError, match="pattern"):
        lf.lora_scale({"r": 4, "lora_alpha": 4, "rank_pattern": {"to_k": 2}})


def test_kohya_names_convert_back_through_diffusers():
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
    from diffusers.utils import convert_unet_state_dict_to_peft

    pairs = lf.peft_pairs(_peft_state(4, 0))
    kohya = lf.to_kohya(pairs)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight" in kohya
    assert kohya["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha"].item() == 4.0
    state, alphas = _convert_non_diffusers_lora_to_diffusers(dict(kohya))
    assert set(alphas.values()) == {4.0}
    peft = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in state.items()})
    assert peft.keys() == {k.removeprefix("unet.") for k in lf.to_diffusers(pairs)}
    for m, (a, b) in pairs.items():
        assert torch.equal(peft[f"{m}.lora_A.weight"], a) and torch.equal(peft[f"{m}.lora_B.weight"], b)


def test_unexpected_keys_and_unpaired_matrices_are_refused():
    state = _peft_state(2, 0)
    with pytest.raises(lf.LoraFormatError, match="unexpected key"):
        lf.peft_pairs({**state, "foo.weight": torch.zeros(1)})
    state.pop(f"{MODULES[0]}.lora_B.weight")
    with pytest.raises(lf.LoraFormatError, match="both"):
        lf.peft_pairs(state)
    assert sorted(lf.peft_pairs({f"unet.{k}": v for k, v in _peft_state(2, 0).items()})) == sorted(MODULES)


def test_model_hash_is_the_files_tensor_data_whatever_its_metadata(tmp_path):
    from safetensors.torch import save_file

    tensors = lf.to_kohya(lf.peft_pairs(_peft_state(4, 0)))
    model_hash, legacy = lf.safetensors_hashes(tensors, {"ss_output_name": "y"})
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"ss_output_name": "x", "lfsd.token": "<x>"})
    data = (tmp_path / "x.safetensors").read_bytes()
    assert model_hash == hashlib.sha256(data[8 + int.from_bytes(data[:8], "little") :]).hexdigest()
    assert len(legacy) == 8


def test_textual_inversion_layouts():
    e = torch.arange(4.0)
    assert lf.ti_a1111(e)["emb_params"].shape == (1, 4)
    assert list(lf.ti_diffusers({"<a>": e, "<b>": e.reshape(1, 4)})) == ["<a>", "<b>"]
    assert lf.ti_diffusers({"<b>": e})["<b>"].shape == (1, 4)  # one row: one vector in kohya and A1111
