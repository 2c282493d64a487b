"""The lifelong trainer: KD behaviour, data isolation between tasks, checkpoints, a short sequence."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from components.lifelong import LifelongModel
from components.training.concept import read_concept
from components.training.loop import train_task
from components.training.methods import METHODS, get_method

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, Path)):
        _OPENED.append(str(Path(args[0]).resolve()))


sys.addaudithook(_audit)


def test_kd_loss_is_zero_before_the_first_update_and_positive_after(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    cfg = dataclasses.replace(tiny_training_config, steps=3, lr=0.05)
    result = train_task(model, read_concept(two_concepts[0]), get_method("lfs"), cfg, tmp_path / "01")
    kd = [row["kd"] for row in result.losses]
    assert kd[0] < 1e-10  # the fresh LoRA is zero: student == teacher
    assert kd[-1] > 1e-8  # after updates the student has moved away from the teacher


def test_trainer_never_opens_a_previous_concepts_files(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    global _OPENED
    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    first, second = (read_concept(d) for d in two_concepts)
    train_task(model, first, get_method("lfs"), tiny_training_config, tmp_path / "01")
    _OPENED = []
    try:
        train_task(model, second, get_method("lfs"), tiny_training_config, tmp_path / "02")
        opened = list(_OPENED)
    finally:
        _OPENED = None
    first_dir = str(first.folder.resolve())
    assert any(p.startswith(str(second.folder.resolve())) for p in opened)  # the hook does see reads
    assert not [p for p in opened if p.startswith(first_dir)]


def test_checkpoint_round_trip_rebuilds_the_same_model(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    from components.model.sampling import generate

    model = LifelongModel.from_base(tiny_base_dir, "finetune")
    for k, d in enumerate(two_concepts, start=1):
        train_task(model, read_concept(d), get_method("finetune"), tiny_training_config, tmp_path / f"0{k}")
    model.eval()
    prompts = [f"a {e.token} {e.class_word} on a white background" for e in model.ledger.entries]
    before = generate(model.bundle, prompts, [0, 1], steps=3)
    again = LifelongModel.from_checkpoint(tmp_path / "02")
    assert again.ledger.names() == model.ledger.names()
    assert again.adapter_names() == ["task1", "task2"]
    after = generate(again.bundle, prompts, [0, 1], steps=3)
    assert torch.allclose(before, after, atol=1e-4)
    # Only what the task changed: no copy of the base inside a checkpoint.
    files = {p.name for p in (tmp_path / "02").rglob("*") if p.is_file()}
    assert files == {"pytorch_lora_weights.safetensors", "learned_embeds.safetensors", "ledger.json", "training.json"}


def test_a_concept_cannot_be_learned_twice(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    model = LifelongModel.from_base(tiny_base_dir, "finetune")
    c = read_concept(two_concepts[0])
    train_task(model, c, get_method("finetune"), tiny_training_config, tmp_path / "01")
    with pytest.raises(ValueError, match="already learned"):
        train_task(model, c, get_method("finetune"), tiny_training_config, tmp_path / "02")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_a_two_concept_sequence(
    method, params, tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    from components.evaluation.embedder import ClipAnalogue, DinoAnalogue, WorldEvaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.training.in_process_sequence import run_sequence

    net = WorldEvaluator().eval()
    evaluator = ForgettingEvaluator(
        ClipAnalogue(net),
        DinoAnalogue(net),
        dataclasses.replace(params.forgetting, images_per_prompt=1, rcf_seeds=1, steps=2),
    )
    result = run_sequence(
        tiny_base_dir, two_concepts, method, tiny_training_config, evaluator, tmp_path / "ckpt", log=lambda s: None
    )
    m = result.metrics
    assert len(m["matrix"]) == 2 and len(m["matrix"][1]) == 2
    for key in (
        "final_fidelity",
        "avg_forgetting",
        "bwt",
        "rcf_preservation",
        "new_concept_fidelity",
        "text_alignment",
    ):
        assert m[key] == m[key], key  # not NaN
    assert (tmp_path / "ckpt" / f"02-{read_concept(two_concepts[1]).name}" / "ledger.json").is_file()


def _full_kv(cfg):
    return dataclasses.replace(cfg, adapter="full-kv")


def test_full_kv_kd_is_zero_before_the_first_update_and_positive_after(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    cfg = dataclasses.replace(_full_kv(tiny_training_config), steps=3, lr=0.05)
    result = train_task(model, read_concept(two_concepts[0]), get_method("lfs"), cfg, tmp_path / "01")
    kd = [row["kd"] for row in result.losses]
    assert kd[0] < 1e-10  # the teacher is the pre-task K/V: identical before the first update
    assert kd[-1] > 1e-8


def test_full_kv_checkpoint_holds_only_the_kv_delta_and_round_trips(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    from safetensors.torch import load_file

    from components.lifelong import KV_DIR, KV_WEIGHTS, kv_layers
    from components.model.pipeline import load
    from components.model.sampling import generate

    model = LifelongModel.from_base(tiny_base_dir, "finetune")
    for k, d in enumerate(two_concepts, start=1):
        train_task(model, read_concept(d), get_method("finetune"), _full_kv(tiny_training_config), tmp_path / f"0{k}")
    model.eval()
    prompts = [f"a {e.token} {e.class_word} on a white background" for e in model.ledger.entries]
    before = generate(model.bundle, prompts, [0, 1], steps=3)
    again = LifelongModel.from_checkpoint(tmp_path / "02")
    assert [e.adapter for e in again.ledger.entries] == ["full-kv", "full-kv"]
    assert again.adapter_names() == []  # no peft adapters: the deltas are in the K/V weights
    assert torch.allclose(before, generate(again.bundle, prompts, [0, 1], steps=3), atol=1e-4)
    files = {p.relative_to(tmp_path / "02").as_posix() for p in (tmp_path / "02").rglob("*") if p.is_file()}
    assert files == {f"{KV_DIR}/{KV_WEIGHTS}", "learned_embeds.safetensors", "ledger.json", "training.json"}
    # Both tasks trained the same weights; each checkpoint holds its own change, and only K/V changed.
    base = load(tiny_base_dir).unet.state_dict()
    rebuilt = again.bundle.unet.state_dict()
    changed = {n for n in base if not torch.equal(base[n], rebuilt[n])}
    assert changed and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in changed)
    deltas = [load_file(tmp_path / f"0{k}" / KV_DIR / KV_WEIGHTS) for k in (1, 2)]
    assert {d.dtype for delta in deltas for d in delta.values()} == {torch.float16}  # half the bytes (save_task)
    for name, layer in kv_layers(load(tiny_base_dir).unet).items():
        assert torch.allclose(layer.weight + deltas[0][name] + deltas[1][name], rebuilt[f"{name}.weight"], atol=1e-6)
        assert deltas[1][name].abs().sum() > 0


def test_c_lora_refuses_full_kv(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    model = LifelongModel.from_base(tiny_base_dir, "c-lora")
    with pytest.raises(ValueError, match="adapter: lora"):
        train_task(
            model, read_concept(two_concepts[0]), get_method("c-lora"), _full_kv(tiny_training_config), tmp_path / "01"
        )
    assert model.ledger.entries == []


def test_an_unknown_adapter_is_refused_when_params_are_read(tiny_training_config):
    with pytest.raises(ValueError, match=r"training\.adapter"):
        dataclasses.replace(tiny_training_config, adapter="full")


@pytest.mark.parametrize("method", ["lfs", "finetune"])
def test_full_kv_runs_a_two_concept_sequence(
    method, params, tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    from components.evaluation.embedder import ClipAnalogue, DinoAnalogue, WorldEvaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.training.in_process_sequence import run_sequence

    net = WorldEvaluator().eval()
    evaluator = ForgettingEvaluator(
        ClipAnalogue(net),
        DinoAnalogue(net),
        dataclasses.replace(params.forgetting, images_per_prompt=1, rcf_seeds=1, steps=2),
    )
    result = run_sequence(
        tiny_base_dir,
        two_concepts,
        method,
        _full_kv(tiny_training_config),
        evaluator,
        tmp_path / "ckpt",
        log=lambda s: None,
    )
    assert len(result.metrics["matrix"]) == 2
    assert result.metrics["avg_forgetting"] == result.metrics["avg_forgetting"]


def test_ray_run_storage_is_the_state_folder_unless_params_name_a_shared_one(tmp_path):
    import dataclasses

    from components.config import load_params
    from components.ray_train.runtime import drop_run, run_storage

    ray_cfg = load_params().ray
    assert run_storage(ray_cfg, tmp_path) == str(tmp_path / "ray_results")
    shared = dataclasses.replace(ray_cfg, storage_path=str(tmp_path / "nfs" / "runs"))
    assert run_storage(shared, tmp_path / "elsewhere") == str(tmp_path / "nfs" / "runs")
    assert run_storage(dataclasses.replace(ray_cfg, storage_path="s3://bucket/lfsd"), tmp_path) == "s3://bucket/lfsd"
    (tmp_path / "nfs" / "runs" / "01-a-123" / "checkpoint_000000").mkdir(parents=True)
    (tmp_path / "nfs" / "runs" / "02-b-456").mkdir()
    drop_run(shared, tmp_path, "01-a-123")
    assert sorted(p.name for p in (tmp_path / "nfs" / "runs").iterdir()) == ["02-b-456"]


def test_the_task_board_hands_out_one_request_at_a_time_and_again_until_finished():
    """ray_train.warm.TaskBoard without Ray: a request stays in flight until finished, so a restarted worker
    group's rank 0 is handed the same one again; the next comes only after it; close ends the loop."""
    from components.ray_train.warm import WAIT, TaskBoard

    board = TaskBoard()
    assert board.take(0.01) == WAIT and board.result("a", 0.01) == (False, None)
    board.submit("a", ("req-a",))
    board.submit("b", ("req-b",))
    assert board.take(0.01) == ("a", ("req-a",))
    assert board.take(0.01) == ("a", ("req-a",))  # a restarted group asks again: the same request
    board.finish("a", {"seconds": 1.0})
    assert board.result("a", 0.01) == (True, {"seconds": 1.0}) and board.result("a", 0.01) == (False, None)
    assert board.take(0.01) == ("b", ("req-b",))
    board.close()
    assert board.take(0.01) == ("b", ("req-b",))  # closing never drops the request in flight
    board.finish("b", None)
    assert board.take(0.01) is None
