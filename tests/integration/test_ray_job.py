"""A lifelong task as a Ray Train job, against a real Ray head on 127.0.0.1 (no mocks): a two-concept
chain, a crash and resume through FailureConfig, and (in-process, no Ray) the trainer's resume and
gradient-sync hooks the Ray worker relies on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest


def test_ray_temp_dir_stays_short_enough_for_unix_sockets(tmp_path):
    from components.ray_train.runtime import ray_temp_dir

    assert ray_temp_dir(Path("/w/.lfsd")) == Path("/w/.lfsd/private/ray")
    fallback = ray_temp_dir(tmp_path / ("x" * 80))
    assert fallback.parent.parent == Path("/tmp") and fallback.parent.name.startswith("lfsd-")


def test_train_task_resumes_exactly_and_calls_grad_sync(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    """In-process: a state taken at step 2 and restored into a fresh model continues at step 3 and ends
    where the uninterrupted run ended (same RNG, optimizer, KD bank); grad_sync sees every trainable tensor."""
    import torch

    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import WorkerHooks, train_task
    from components.training.methods import get_method

    cfg = dataclasses.replace(tiny_training_config, steps=4, lr=0.05, kd_refresh_every=2)
    concept, method = read_concept(two_concepts[0]), get_method("lfs")
    states: dict[int, dict] = {}
    straight = LifelongModel.from_base(tiny_base_dir, "lfs")
    full = train_task(
        straight,
        concept,
        method,
        cfg,
        tmp_path / "full",
        hooks=WorkerHooks(checkpoint_cb=lambda step, st: states.__setitem__(step, st), checkpoint_every=2),
    )
    assert sorted(states) == [2]  # every 2 steps, never after the last one
    torch.save(states[2], tmp_path / "state.pt")  # what the Ray worker does with it
    resume = torch.load(tmp_path / "state.pt", weights_only=True)

    synced: list[list] = []

    def grad_sync(params):
        assert all(p.grad is not None for p in params)
        synced.append(list(params))

    reported: list[dict] = []
    again = LifelongModel.from_base(tiny_base_dir, "lfs")
    resumed = train_task(
        again,
        concept,
        method,
        cfg,
        tmp_path / "resumed",
        report=reported.append,
        hooks=WorkerHooks(resume=resume, grad_sync=grad_sync),
    )
    assert resumed.resumed_from_step == 2 and full.resumed_from_step == 0
    assert [r["step"] for r in reported] == [3, 4]
    assert [r["step"] for r in resumed.losses] == [1, 2, 3, 4]
    assert len(synced) == 2  # once per optimisation step actually run
    lora = again.task_parameters(1)
    emb = again.bundle.text_encoder.get_input_embeddings().weight
    assert len(synced[0]) == len(lora) + 1 and synced[0][-1] is emb
    # Begun once: one token, one adapter.
    assert again.ledger.names() == [concept.name] and again.adapter_names() == ["task1"]
    assert again.bundle.tokenizer.get_vocab().get(concept.token) is not None
    for a, b in zip(full.losses, resumed.losses):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)
    for p, q in zip(straight.task_parameters(1), lora):
        assert torch.allclose(p, q, atol=1e-6)
    token_id = again.bundle.tokenizer.convert_tokens_to_ids(concept.token)
    straight_emb = straight.bundle.text_encoder.get_input_embeddings().weight
    assert torch.allclose(straight_emb[token_id], emb[token_id], atol=1e-6)


@pytest.fixture(scope="module")
def ray_head():
    from tests.integration.services import ray_head as start

    with start() as address:
        yield address


@pytest.fixture(scope="module")
def ray_concepts(tmp_path_factory):
    from components.world.concepts import write_concepts

    return write_concepts(tmp_path_factory.mktemp("rayconcepts") / "concepts", n=2, shots=3, seed=5)


def _ray_cfg(**kw):
    from components.config import load_params

    base = dataclasses.replace(
        load_params().ray,
        num_workers=1,
        cpus_per_worker=2,
        max_failures=1,
        checkpoint_every=2,
        health_check_interval_s=0.1,
    )
    return dataclasses.replace(base, **kw)


def _request(base, previous, concept_dir, out, cfg):
    from components.training.launch import TrainRequest

    return TrainRequest(
        base_dir=base,
        previous_checkpoint=previous,
        concept_dir=concept_dir,
        references=str(concept_dir),
        out=out,
        method="lfs",
        cfg=cfg,
    )


@pytest.mark.integration
def test_a_crashed_worker_resumes_from_its_last_checkpoint(
    ray_head, tiny_base_dir, ray_concepts, tiny_training_config, tmp_path, monkeypatch
):
    from components.ray_train.job import FAIL_AT_STEP_ENV, train_on_ray
    from components.training.concept import read_concept

    cfg = dataclasses.replace(tiny_training_config, steps=5)
    monkeypatch.setenv(FAIL_AT_STEP_ENV, "4")  # after the resumable checkpoint of step 2 (checkpoint_every=2)
    reported: list[dict] = []
    result = train_on_ray(
        _request(tiny_base_dir, None, ray_concepts[0], tmp_path / "01", cfg),
        _ray_cfg(checkpoint_every=2),
        tmp_path / "state",
        reported.append,
    )
    assert result.resumed_from_step == 2  # the restarted worker continued after step 2, not from step 1
    assert [r["step"] for r in result.losses] == [1, 2, 3, 4, 5]  # rows up to 2 came back with the checkpoint
    assert result.losses == reported and all("denoise" in r and "kd" in r for r in reported)
    assert all("system/cpu_utilization_percentage" in r for r in reported)  # sampled in the worker
    out = result.checkpoint
    assert (out / "ledger.json").is_file() and (out / "learned_embeds.safetensors").is_file()
    assert (out / "unet_lora" / "pytorch_lora_weights.safetensors").is_file()
    assert json.loads((out / "training.json").read_text())["final"]["step"] == 5
    assert result.relevant_prompts == json.loads((out / "training.json").read_text())["relevant_prompts"]
    assert result.wall_seconds >= result.seconds > 0 and (tmp_path / "state" / "ray_results").is_dir()

    # Without a retry the same fault fails the run, and the error names the concept.
    monkeypatch.setenv(FAIL_AT_STEP_ENV, "2")
    with pytest.raises(RuntimeError, match=rf"{read_concept(ray_concepts[0]).name}(.|\n)*injected failure at step 2"):
        train_on_ray(
            _request(tiny_base_dir, None, ray_concepts[0], tmp_path / "01b", cfg),
            _ray_cfg(max_failures=0),
            tmp_path / "state",
        )


@pytest.mark.integration
@pytest.mark.slow
def test_a_warm_worker_group_trains_a_chain_in_one_process_and_resumes_a_crash(
    ray_head, tiny_base_dir, ray_concepts, tiny_training_config, tmp_path, monkeypatch
):
    """One fit for a sequence (ray_warm): both tasks of a chain on the same worker process, the second
    from the first's checkpoint, the first equal to the in-process loop's; then with a fault injected,
    each task's restarted worker group resumes that task from its own last checkpoint."""
    import torch
    from safetensors.torch import load_file

    from components.lifelong import Ledger
    from components.ray_train.warm import WarmLauncher
    from components.ray_train.worker import FAIL_AT_STEP_ENV
    from components.training.concept import read_concept
    from components.training.launch import in_process

    cfg = dataclasses.replace(tiny_training_config, steps=5)

    def chain(prefix: str):
        """The two concepts as a chain, on one WarmLauncher closed afterwards."""
        warm = WarmLauncher(_ray_cfg(checkpoint_every=2, max_failures=2), tmp_path / "state")
        try:
            first = warm(_request(tiny_base_dir, None, ray_concepts[0], tmp_path / f"{prefix}01", cfg))
            return (
                warm,
                first,
                warm(_request(tiny_base_dir, first.checkpoint, ray_concepts[1], tmp_path / f"{prefix}02", cfg)),
            )
        finally:
            warm.close()

    warm, first, second = chain("")
    assert first.worker_pid == second.worker_pid > 0  # one worker process for the whole chain
    assert first.resumed_from_step == second.resumed_from_step == 0
    assert [r["step"] for r in second.losses] == [1, 2, 3, 4, 5]
    assert Ledger.read(second.checkpoint / "ledger.json").names() == [read_concept(c).name for c in ray_concepts]
    assert not warm.thread.is_alive() and not (tmp_path / "state" / "ray_results" / "warm-sequence").exists()
    here = in_process(2)(_request(tiny_base_dir, None, ray_concepts[0], tmp_path / "01-here", cfg))
    lora = "unet_lora/pytorch_lora_weights.safetensors"
    a, b = load_file(first.checkpoint / lora), load_file(here.checkpoint / lora)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)

    monkeypatch.setenv(FAIL_AT_STEP_ENV, "4")  # every task's first attempt fails after its step-2 checkpoint
    _, first, second = chain("f")
    assert first.resumed_from_step == second.resumed_from_step == 2  # its own state, not the other task's
    assert [r["step"] for r in second.losses] == [1, 2, 3, 4, 5]
    assert json.loads((second.checkpoint / "training.json").read_text())["final"]["step"] == 5
