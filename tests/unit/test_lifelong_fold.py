"""Folding a chain's LoRA adapters into the K/V weights for serving: the same noise prediction as the
stacked model, no peft layer left, full-K/V tasks kept exactly once, and no training on the result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from components.lifelong import LifelongModel, kv_layers

CHAIN = [("aa", "star", "lora"), ("bb", "ring", "full-kv"), ("cc", "cross", "lora")]


@pytest.fixture(scope="module")
def chain(tiny_base_dir, tmp_path_factory) -> Path:
    """Three task checkpoints (LoRA, full-K/V, LoRA) with random, non-trivial updates; the last one's path.
    Written through `begin_task`/`save_task` like a trained chain, without the cost of training."""
    root = tmp_path_factory.mktemp("fold")
    (root / "refs").mkdir()  # the ledger names a reference folder per task; a served model refuses a missing one
    model = LifelongModel.from_base(tiny_base_dir, "finetune")
    torch.manual_seed(3)
    last = root
    for k, (name, word, adapter) in enumerate(CHAIN, start=1):
        last = root / f"{k:02d}-{name}"
        _, token_id = model.begin_task(name, word, str(root / "refs"), str(last), rank=4, adapter=adapter)
        with torch.no_grad():
            for p in model.task_parameters(k):
                if adapter == "full-kv":
                    p.add_(torch.randn_like(p) * 0.3)
                else:
                    p.normal_(0, 0.5)  # a fresh LoRA's B is zero: make both A and B non-trivial
            model.bundle.text_encoder.get_input_embeddings().weight[token_id].normal_(0, 1)
        model.save_task(last, token_id)
    return last


def _eps(model: LifelongModel) -> torch.Tensor:
    """The UNet's noise prediction for fixed latents, timesteps, learned-token prompts and a random context."""
    unet = model.bundle.unet
    g = torch.Generator().manual_seed(0)
    c, s = unet.config.in_channels, unet.config.sample_size
    latents = torch.randn(3, c, s, s, generator=g)
    context = torch.randn(3, 1, model.bundle.context_encoder.config.embed_dim, generator=g)
    text = model.bundle.encode_prompts([f"a <{n}> {w} on a white background" for n, w, _ in CHAIN])
    with torch.no_grad():
        return unet(
            latents,
            torch.tensor([50, 500, 950]),
            encoder_hidden_states=text,
            added_cond_kwargs={"image_embeds": [context]},
        ).sample


def _peft_layers(unet: torch.nn.Module) -> list[str]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [n for n, m in unet.named_modules() if isinstance(m, BaseTunerLayer)]


def test_folded_model_predicts_what_the_stacked_one_does(chain):
    stacked = LifelongModel.from_checkpoint(chain)
    folded = LifelongModel.from_checkpoint(chain).folded()
    assert stacked.adapter_names() == ["task1", "task3"] and _peft_layers(stacked.bundle.unet)
    want = _eps(stacked)
    with _adapters_off(stacked):
        assert (want - _eps(stacked)).abs().max() > 1e-2  # the adapters matter: the check below can fail
    got = _eps(folded)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert _peft_layers(folded.bundle.unet) == []
    assert not any("lora" in n for n, _ in folded.bundle.unet.named_parameters())
    assert not getattr(folded.bundle.unet, "peft_config", None)
    assert folded.ledger.names() == ["aa", "bb", "cc"] and folded.is_folded


class _adapters_off:
    """The stacked model with its LoRA adapters switched off (full-K/V deltas stay in the weights)."""

    def __init__(self, model: LifelongModel):
        self.model = model

    def __enter__(self):
        self.model._activate([])

    def __exit__(self, *exc):
        self.model._activate(self.model.adapter_names())


def test_folding_adds_each_lora_once_and_keeps_the_full_kv_delta(chain, tiny_base_dir):
    """Folded K/V weight == base + the full-K/V task's delta (from its checkpoint) + sum_k s_k B_k A_k."""
    from safetensors.torch import load_file

    from components.lifelong import KV_DIR, KV_WEIGHTS
    from components.model.pipeline import load

    stacked = LifelongModel.from_checkpoint(chain)
    lora = {}
    for name, module in stacked.bundle.unet.named_modules():
        if hasattr(module, "lora_A") and name.endswith(("to_k", "to_v")):
            lora[name] = sum(
                module.scaling[a] * module.lora_B[a].weight @ module.lora_A[a].weight for a in stacked.adapter_names()
            )
    base = kv_layers(load(tiny_base_dir).unet)
    kv_delta = load_file(chain.parent / "02-bb" / KV_DIR / KV_WEIGHTS)
    folded = kv_layers(LifelongModel.from_checkpoint(chain).folded().bundle.unet)
    assert sorted(folded) == sorted(base) == sorted(kv_delta) == sorted(lora)
    for name, layer in folded.items():
        assert type(layer) is torch.nn.Linear, name
        assert kv_delta[name].abs().max() > 1e-2 and lora[name].abs().max() > 1e-2
        torch.testing.assert_close(layer.weight, base[name].weight + kv_delta[name] + lora[name], atol=1e-5, rtol=0)


def test_a_folded_model_serves_only(chain):
    model = LifelongModel.from_checkpoint(chain).folded()
    before = {n: p.clone() for n, p in model.bundle.unet.named_parameters()}
    assert model.folded() is model  # folding twice adds nothing
    assert all(torch.equal(p, before[n]) for n, p in model.bundle.unet.named_parameters())
    with pytest.raises(RuntimeError, match="folded"):
        model.begin_task("dd", "star", "refs", str(chain.parent / "04-dd"), rank=4)
    with pytest.raises(RuntimeError, match="folded"), model.as_teacher():
        pass
    assert model.ledger.names() == ["aa", "bb", "cc"]  # the refused task left no trace


def test_the_served_model_is_folded_and_still_lists_its_concepts(chain, tmp_path):
    from components.lifelong import LEDGER_FILE, Ledger
    from components.registry.pyfunc import (
        BASE_KEY,
        LEDGER_KEY,
        LfsdPyfunc,
        checkpoint_key,
        references_key,
    )

    ledger = Ledger.read(chain / LEDGER_FILE)
    arts = {BASE_KEY: ledger.base}
    for e in ledger.entries:
        arts[checkpoint_key(e.task)], arts[references_key(e.task)] = e.checkpoint, e.references
    keyed = Ledger(
        BASE_KEY,
        ledger.base_hash,
        ledger.method,
        [replace(e, checkpoint=checkpoint_key(e.task), references=references_key(e.task)) for e in ledger.entries],
    )
    keyed.save(tmp_path / LEDGER_FILE)
    arts[LEDGER_KEY] = str(tmp_path / LEDGER_FILE)
    served = LfsdPyfunc()
    served.load_context(SimpleNamespace(artifacts=arts, model_config={"steps": 2, "guidance_scale": 3.0}))
    assert served.concepts() == ["aa", "bb", "cc"]
    assert served.model.is_folded and _peft_layers(served.model.bundle.unet) == []


def test_a_new_task_folds_the_frozen_adapters_and_its_teacher_is_still_theta_k_minus_1(chain):
    """`begin_task(fold_frozen=True)` (what training does): the earlier LoRAs are merged into the weights,
    only the new task's adapter is a live peft module (a step costs the same at any k), and the teacher
    view predicts what the stacked theta_{k-1} predicts; the next task's files hold only its own LoRA."""
    stacked = LifelongModel.from_checkpoint(chain)
    before = _eps(stacked)
    model = LifelongModel.from_checkpoint(chain)
    _, token_id = model.begin_task("dd", "star", "refs", str(chain.parent / "04-dd-folded"), rank=4, fold_frozen=True)
    assert model.adapter_names() == ["task4"]  # tasks 1 and 3 merged, task 2 was full-K/V
    with model.as_teacher():
        assert torch.allclose(_eps(model), before, atol=1e-5)
    out = model.save_task(chain.parent / "04-dd-folded", token_id)
    from safetensors.torch import load_file

    keys = load_file(out / "unet_lora" / "pytorch_lora_weights.safetensors").keys()
    assert keys and all("lora_A" in k or "lora_B" in k for k in keys)
    rebuilt = LifelongModel.from_checkpoint(out)  # the chain's four tasks, stacked as stored
    assert rebuilt.adapter_names() == ["task1", "task3", "task4"]
    with torch.no_grad():  # the new LoRA's B starts at zero: theta_4 draws what theta_3 drew
        assert torch.allclose(_eps(rebuilt), before, atol=1e-5)


def test_loading_folded_is_the_stacked_model_folded_and_can_still_train(chain):
    """`from_checkpoint(fold=True)` adds each LoRA into the K/V weights as it reads it and all tokens in one
    resize (loading flat in k): the weights of stacking the adapters and folding them (up to the order of
    float additions: here the full-K/V delta of task 2 lands between the LoRAs, as in training; a pure LoRA
    chain is bitwise equal), the same tokens and vocabulary, no peft layer; and it begins the next task
    like a stacked model."""
    stacked = LifelongModel.from_checkpoint(chain).folded()
    direct = LifelongModel.from_checkpoint(chain, fold=True)
    assert _peft_layers(direct.bundle.unet) == [] and direct.ledger.names() == ["aa", "bb", "cc"]
    a, b = stacked.bundle.unet.state_dict(), direct.bundle.unet.state_dict()
    assert sorted(a) == sorted(b) and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert stacked.bundle.tokenizer.get_vocab() == direct.bundle.tokenizer.get_vocab()
    assert torch.equal(
        stacked.bundle.text_encoder.get_input_embeddings().weight,
        direct.bundle.text_encoder.get_input_embeddings().weight,
    )
    before = _eps(direct)
    _, _token_id = direct.begin_task("ee", "ring", "refs", str(chain.parent / "04-ee"), rank=4, fold_frozen=True)
    assert direct.adapter_names() == ["task4"]
    with direct.as_teacher():
        assert torch.equal(_eps(direct), before)


def test_loading_folded_refuses_a_lora_file_for_another_base(chain, tmp_path):
    """A LoRA whose module is not a K/V layer of this base is an error naming the file, not a silent skip."""
    import shutil

    from safetensors.torch import load_file, save_file

    bad = tmp_path / chain.name
    shutil.copytree(chain, bad)
    lora = bad / "unet_lora" / "pytorch_lora_weights.safetensors"
    state = {k.replace("attn2.to_k", "attn1.to_k"): v for k, v in load_file(lora).items()}
    save_file(state, lora)
    from components.lifelong import read_ledger

    ledger = read_ledger(chain)
    ledger.entries[-1] = replace(ledger.entries[-1], checkpoint=str(bad), sha256={})  # as before the hashes
    with pytest.raises(ValueError, match=r"pytorch_lora_weights.safetensors: LoRA module .*attn1.to_k"):
        LifelongModel.from_ledger(ledger, fold=True)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("victim", ["unet_lora/pytorch_lora_weights.safetensors", "learned_embeds.safetensors"])
def test_one_flipped_bit_in_a_task_file_is_refused_naming_the_file_and_both_hashes(chain, tmp_path, victim, fold):
    """Integrity issue, point 1 (the ledger): each task's weight files are hashed into its ledger entry
    when written and checked before they are read, stacked or folded."""
    import shutil

    from components.checksums import CorruptFile, file_digest
    from components.lifelong import read_ledger

    bad = tmp_path / chain.name
    shutil.copytree(chain, bad)
    ledger = read_ledger(chain)
    entry = ledger.entries[-1]
    assert entry.sha256[victim] == file_digest(bad / victim)  # recorded when the task was written
    data = bytearray((bad / victim).read_bytes())
    data[-3] ^= 0x40  # a weight's exponent bit, the file still parses
    (bad / victim).write_bytes(bytes(data))
    ledger.entries[-1] = replace(entry, checkpoint=str(bad))
    with pytest.raises(CorruptFile) as caught:
        LifelongModel.from_ledger(ledger, fold=fold)
    message = str(caught.value)
    assert str(bad / victim) in message and entry.sha256[victim] in message and file_digest(bad / victim) in message
    assert "\n" not in message
