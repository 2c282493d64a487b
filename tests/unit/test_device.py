"""One device and one precision (components/device.py): what this machine is refused, in one line naming
the setting; the bf16 CPU path trains with the frozen weights in bf16 and the task's tensors in fp32."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from components.device import CPU, DeviceError, Placement, check_precision, placement, resolve_device


def _runtime(params, **kw):
    return dataclasses.replace(params.runtime, **kw)


def test_auto_falls_back_to_the_cpu_and_says_why(params):
    where = placement(_runtime(params, device="auto"))
    if torch.cuda.is_available():
        assert where.device.type == "cuda"
    else:
        assert where.device.type == "cpu" and "no GPU" in where.why


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal cannot happen")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_line_naming_the_setting(spec):
    with pytest.raises(DeviceError) as err:
        resolve_device(spec)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"runtime.device={spec}:") and "runtime.device=cpu" in text


def test_fp16_on_the_cpu_is_refused_and_bf16_is_not():
    with pytest.raises(DeviceError, match=r"runtime\.precision=fp16 on the CPU.*bf16 or fp32"):
        check_precision("fp16", torch.device("cpu"))
    check_precision("bf16", torch.device("cpu"))


@pytest.mark.parametrize(("key", "value"), [("device", "tpu"), ("device", "cuda:x"), ("precision", "fp8")])
def test_unknown_values_fail_when_params_are_read(params, key, value):
    with pytest.raises(ValueError, match=rf"runtime\.{key}"):
        _runtime(params, **{key: value})


def test_fp32_is_the_cpu_path_unchanged():
    """fp32 adds no autocast and no scaler: the CPU path stays bitwise as it was (benchmarks.training_fingerprint)."""
    assert CPU.autocast().__class__.__name__ == "nullcontext" and CPU.grad_scaler() is None
    bf16 = Placement(torch.device("cpu"), "bf16")
    with bf16.autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    assert bf16.grad_scaler() is None


def _train(tiny_base_dir, concept_dir, cfg, out, where):
    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    result = train_task(model, read_concept(concept_dir), get_method("lfs"), cfg, out, where=where)
    return model, result


def test_bf16_on_the_cpu_keeps_frozen_weights_low_and_what_trains_fp32(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    from safetensors.torch import load_file

    cfg = dataclasses.replace(tiny_training_config, steps=4, report_every=2)
    bf16 = Placement(torch.device("cpu"), "bf16")
    model, low = _train(tiny_base_dir, two_concepts[0], cfg, tmp_path / "bf16", bf16)
    _, full = _train(tiny_base_dir, two_concepts[0], cfg, tmp_path / "fp32", CPU)
    unet = model.bundle.unet
    trainable = {n for n, p in unet.named_parameters() if "lora_" in n and "task1" in n}
    assert trainable and all(p.dtype == torch.float32 for n, p in unet.named_parameters() if n in trainable)
    assert unet.conv_in.weight.dtype == torch.bfloat16  # a frozen base weight
    assert model.bundle.text_encoder.get_input_embeddings().weight.dtype == torch.float32  # the token's table
    for name in ("denoise", "kd"):  # same objective: the first step's terms agree to bf16's precision
        a, b = low.losses[0][name], full.losses[0][name]
        assert a == a and abs(a - b) <= 0.05 * abs(b) + 1e-3, (name, a, b)
    for rel in ("unet_lora/pytorch_lora_weights.safetensors", "learned_embeds.safetensors"):  # as fp32 writes them
        got, want = load_file(tmp_path / "bf16" / rel), load_file(tmp_path / "fp32" / rel)
        assert {k: v.dtype for k, v in got.items()} == {k: v.dtype for k, v in want.items()}


def test_set_changes_where_a_command_runs_and_nothing_else():
    from pathlib import Path

    from components.workspace.layout import load_workspace

    repo = Path(__file__).resolve().parents[2]  # this repository is a workspace too
    ws = load_workspace(repo, ["runtime.precision=bf16", "runtime.device=cpu", "runtime.threads=1"])
    assert (ws.params.runtime.precision, ws.params.runtime.device, ws.params.runtime.threads) == ("bf16", "cpu", 1)
    assert ws.params.training == load_workspace(repo).params.training
    with pytest.raises(ValueError, match=r"expected runtime\.KEY=VALUE"):
        load_workspace(repo, ["training.steps=5"])


def test_bf16_across_tasks_keeps_every_tasks_lora_fp32(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    """One model across a sequence (the benchmarks' in-process runner): task 2's new LoRA attaches to layers
    task 1 left in bf16, and must still train and be saved in fp32."""
    from safetensors.torch import load_file

    from components.training.in_process_sequence import run_sequence

    cfg = dataclasses.replace(tiny_training_config, steps=2)
    bf16 = Placement(torch.device("cpu"), "bf16")
    run_sequence(tiny_base_dir, two_concepts, "lfs", cfg, None, tmp_path / "seq", log=lambda s: None, where=bf16)
    for ckpt in sorted((tmp_path / "seq").glob("0*")):
        tensors = load_file(ckpt / "unet_lora" / "pytorch_lora_weights.safetensors")
        assert tensors and {v.dtype for v in tensors.values()} == {torch.float32}, ckpt.name
