"""Which terms of the LFS objective each method has, and that they act (issue 28, point 5).

    L = L_denoise(C_k | ICGen context) [+ L_denoise(prior)] + lambda_kd L_kd(student vs theta_{k-1}) [+ lambda_clora R]

(components/training/lfs_loss.py). The expected switches are written out here, not read from METHODS,
so a method whose switch is flipped, or a term computed but not used, fails. The student's one batched
pass is observed by spies on the prompts it encodes and on the UNet forward it runs with gradients on.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from components.lifelong import LifelongModel
from components.training import lfs_loss, loop
from components.training.concept import read_concept
from components.training.lfs_loss import LFSObjective
from components.training.loop import train_task
from components.training.methods import METHODS, get_method
from components.world.vocabulary import CLASSES

EXPECTED = {  # method: (kd, icgen, prior, c_lora)
    "lfs": (True, True, False, False),
    "lfs-context-kd": (True, True, False, False),  # + the teacher's samples as KD context from task 2 on (below)
    "lfs-cross-kd": (True, True, False, False),  # + cross points: the new shots under earlier prompts (below)
    "lfs-no-kd": (False, True, False, False),
    "lfs-no-icgen": (True, False, False, False),
    "finetune": (False, False, False, False),
    "prior-preservation": (False, False, True, False),
    "c-lora": (False, False, False, True),
}


class Spy:
    """The objectives `train_task` builds with their (loss, row) per step, the prompts of the student's
    pass and the context (image_embeds) of every UNet forward run with gradients on (the student's)."""

    def __init__(self, monkeypatch):
        self.objectives, self.losses, self.prompts, self.contexts = [], [], [], []
        spy, real_encode = self, lfs_loss.encode_prompts

        class Recorded(LFSObjective):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                spy.objectives.append(self)

            def loss(self, step, rng):
                out = super().loss(step, rng)
                spy.losses.append((out[0].item(), out[1]))
                return out

        def encode(tokenizer, text_encoder, prompts):
            spy.prompts.append(list(prompts))
            return real_encode(tokenizer, text_encoder, prompts)

        monkeypatch.setattr(loop, "LFSObjective", Recorded)
        monkeypatch.setattr(lfs_loss, "encode_prompts", encode)
        self.monkeypatch = monkeypatch

    def watch(self, model: LifelongModel) -> None:
        unet, real = model.bundle.unet, model.bundle.unet.forward

        def forward(*a, **k):
            if torch.is_grad_enabled():
                self.contexts.append(k["added_cond_kwargs"]["image_embeds"][0].detach().clone())
            return real(*a, **k)

        self.monkeypatch.setattr(unet, "forward", forward)


def _cfg(cfg, **kw):
    return dataclasses.replace(cfg, icgen_context_dropout=0.0, prior_images=1, prior_batch_size=1, **kw)


def _perturb_new_update(model: LifelongModel) -> None:
    """Move the fresh LoRA (B = 0 at init: student == teacher) so the student differs from theta_{k-1}."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.task_parameters(model.ledger.entries[-1].task):
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


def _begin(model, concept, method, cfg, out):
    previous = [(f"{e.token} {e.class_word}", e.class_word) for e in model.ledger.entries]
    model.begin_task(
        concept.name,
        concept.class_word,
        str(concept.folder),
        str(out),
        cfg.lora_rank,
        cfg.adapter,
        fold_frozen=not method.c_lora,
    )
    return previous


def _grads(obj, model, **weights):
    """(loss, row, gradient on the task's update) of one fixed draw with the lambdas in `weights`."""
    update = model.task_parameters(model.ledger.entries[-1].task)
    for p in update:
        p.requires_grad_(True)
    obj.cfg = dataclasses.replace(obj.cfg, **weights)
    torch.manual_seed(0)
    if obj.bank is not None:
        obj.bank.generator.manual_seed(0)
    loss, row = obj.loss(1, np.random.default_rng(0))
    return loss.item(), row, torch.cat([g.flatten() for g in torch.autograd.grad(loss, update)])


def test_every_method_is_expected():
    assert set(EXPECTED) == set(METHODS)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_a_method_has_exactly_its_terms_in_the_students_batch(
    method, monkeypatch, tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    kd, icgen, prior, c_lora = EXPECTED[method]
    cfg = _cfg(tiny_training_config, steps=1)
    spy = Spy(monkeypatch)
    model = LifelongModel.from_base(tiny_base_dir, method)
    spy.watch(model)
    concept = read_concept(two_concepts[0])
    result = train_task(model, concept, get_method(method), cfg, tmp_path / "01")
    (obj,) = spy.objectives
    ((total, row),) = spy.losses
    # The loss dict: a key per term the method has, and the loss is their weighted sum.
    assert set(result.losses[0]) == {"step", "denoise"} | ({"kd"} if kd else set()) | ({"clora"} if c_lora else set())
    assert total == pytest.approx(
        row["denoise"] + cfg.lambda_kd * row.get("kd", 0.0) + cfg.lambda_clora * row.get("clora", 0.0),
        rel=1e-5,
        abs=1e-7,
    )
    # Not computed when off: no teacher bank, no relevant prompts, no prior images.
    assert (obj.bank is not None) == kd and bool(result.relevant_prompts) == kd
    assert (obj.prior is not None) == prior
    # The student's one pass: B concept samples, then the prior's, then the KD points, nothing else.
    (prompts,) = spy.prompts
    b, n_prior, n_kd = cfg.batch_size, cfg.prior_batch_size * prior, cfg.kd_batch_size * kd
    assert len(prompts) == b + n_prior + n_kd
    assert prompts[:b] == [concept.prompt()] * b
    assert prompts[b : b + n_prior] == [f"a {concept.class_word}"] * n_prior
    assert all(p in obj.relevant and concept.token not in p for p in prompts[b + n_prior :])
    # ICGen: each concept sample sees the other shots (leave-one-out), the rest get the null context.
    context = spy.contexts[-1]
    assert context.shape[0] == len(prompts)
    assert not context[b:].any()
    if not icgen:
        assert not context[:b].any()
    else:
        picks = np.random.default_rng(cfg.seed).integers(obj.images.shape[0], size=b)  # loss()'s first draw
        k = obj.images.shape[0]
        with torch.no_grad():
            for i, pick in enumerate(picks):
                others = obj.images[[j for j in range(k) if j != pick]][None]
                expected = model.bundle.context_encoder.embed_references(others, torch.ones(1, k - 1))
                assert expected.abs().sum() > 0 and torch.allclose(context[i], expected[0], atol=1e-5)
    status = json.loads((tmp_path / "01" / "training.json").read_text())["icgen"]
    assert status == ("on" if icgen else f"not used by {method}")


def test_icgen_is_off_on_a_base_without_a_context_path(
    monkeypatch, tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    spy = Spy(monkeypatch)
    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    model.bundle.has_context_path = False
    spy.watch(model)
    cfg = _cfg(tiny_training_config, steps=1)
    train_task(model, read_concept(two_concepts[0]), get_method("lfs"), cfg, tmp_path / "01")
    assert not spy.contexts[-1].any()


def test_first_task_distils_from_the_base_on_its_class_prompts(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    """k = 1 has no earlier concept, yet KD applies: the teacher is theta_0, the base, and the relevant
    prompts are the class word and its nearest classes only."""
    from components.model.pipeline import encode_prompts, load

    cfg, method = _cfg(tiny_training_config), get_method("lfs")
    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    concept = read_concept(two_concepts[0])
    previous = _begin(model, concept, method, cfg, tmp_path / "01")
    _perturb_new_update(model)  # the student is not the base; the teacher must still be
    obj = LFSObjective(model, concept, method, cfg, list(CLASSES), previous)
    assert previous == [] and obj.relevant[-1] == "" and all("<" not in p for p in obj.relevant)
    assert any(concept.class_word in p for p in obj.relevant)
    base = load(tiny_base_dir)
    bank = obj.bank
    with torch.no_grad():
        ctx = torch.zeros(len(bank.latents), 1, base.context_encoder.config.embed_dim)
        eps = base.unet(
            bank.latents,
            bank.timesteps,
            encoder_hidden_states=encode_prompts(base.tokenizer, base.text_encoder, bank.point_prompts),
            added_cond_kwargs={"image_embeds": [ctx]},
        ).sample
    assert torch.allclose(eps, bank.targets, atol=1e-4)
    assert obj.loss(1, np.random.default_rng(0))[1]["kd"] > 1e-6  # the moved student is pulled back to the base


def test_kd_distils_theta_k_minus_1_and_its_gradient_reaches_the_new_update(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    cfg, method = _cfg(tiny_training_config), get_method("lfs")
    model = LifelongModel.from_base(tiny_base_dir, "lfs")
    first, second = (read_concept(d) for d in two_concepts)
    train_task(model, first, method, dataclasses.replace(cfg, steps=1, lr=0.05), tmp_path / "01")
    previous = _begin(model, second, method, cfg, tmp_path / "02")
    obj = LFSObjective(model, second, method, cfg, list(CLASSES), previous)
    assert f"{first.token} {first.class_word}" in " | ".join(obj.relevant)  # task 1's concept is pinned
    targets = obj.bank.targets.clone()
    # The fresh update is zero: student == theta_1 == teacher, so KD is (numerically) zero.
    assert _grads(obj, model)[1]["kd"] < 1e-10
    _perturb_new_update(model)
    loss, row, grad = _grads(obj, model)
    loss0, row0, grad0 = _grads(obj, model, lambda_kd=0.0)
    assert row["kd"] > 1e-6 and row["kd"] == pytest.approx(row0["kd"])
    assert row["denoise"] == pytest.approx(row0["denoise"])  # the same draw both times
    assert loss - loss0 == pytest.approx(cfg.lambda_kd * row["kd"], rel=1e-4)
    assert (grad - grad0).norm() > 1e-3 * grad0.norm()  # the KD term's gradient reaches the update
    # The teacher is the model with the new update off: redrawing the bank with the moved student
    # gives the same targets as with the update at zero.
    obj.bank.generator.manual_seed(cfg.seed)
    obj.bank.refreshes = 0
    obj.bank.refresh()
    assert torch.allclose(obj.bank.targets, targets, atol=1e-6)


def test_clora_penalty_is_zero_at_k1_and_pulls_the_new_update_where_earlier_ones_acted(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    cfg, method = _cfg(tiny_training_config), get_method("c-lora")
    model = LifelongModel.from_base(tiny_base_dir, "c-lora")
    first, second = (read_concept(d) for d in two_concepts)
    result = train_task(model, first, method, dataclasses.replace(cfg, steps=1, lr=0.05), tmp_path / "01")
    assert [r["clora"] for r in result.losses] == [0.0]  # no earlier update to protect
    previous = _begin(model, second, method, cfg, tmp_path / "02")
    assert model.adapter_names() == ["task1", "task2"]  # kept apart: the penalty reads task 1's update
    obj = LFSObjective(model, second, method, cfg, list(CLASSES), previous)
    assert _grads(obj, model)[1]["clora"] == 0.0  # the fresh update is zero
    _perturb_new_update(model)
    loss, row, grad = _grads(obj, model)
    loss0, _, grad0 = _grads(obj, model, lambda_clora=0.0)
    assert row["clora"] > 0 and "kd" not in row
    assert loss - loss0 == pytest.approx(cfg.lambda_clora * row["clora"], rel=1e-4)
    assert (grad - grad0).norm() > 1e-3 * grad0.norm()


def _second_task(method_name, tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    """A chain of `method_name` that learned the first concept (one step) and began the second: (cfg, model,
    first, second, previous, the second task's objective). One bank draw walks every relevant prompt."""
    cfg = _cfg(tiny_training_config, kd_batch_size=32, kd_trajectories=17)
    method = get_method(method_name)
    model = LifelongModel.from_base(tiny_base_dir, method_name)
    first, second = (read_concept(d) for d in two_concepts)
    train_task(model, first, method, dataclasses.replace(cfg, steps=1, lr=0.05), tmp_path / "01")
    previous = _begin(model, second, method, cfg, tmp_path / "02")
    return cfg, model, first, second, previous, LFSObjective(model, second, method, cfg, list(CLASSES), previous)


def test_context_kd_gives_earlier_concepts_prompts_the_teachers_own_samples_as_context(
    monkeypatch, tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    """lfs-context-kd (issue 32 §4): from task 2 on, every other trajectory of an earlier concept's prompt is
    walked by the teacher with the ICGen embedding of samples it drew of that concept, and the student's KD
    points carry the same context; plain lfs keeps text-only KD."""
    from components.training.teacher_bank import teacher_contexts

    # one bank draw walks every relevant prompt (4 templates x 4 subjects + ""), the earlier concept's included
    cfg, model, first, second, previous, obj = _second_task(
        "lfs-context-kd", tiny_base_dir, two_concepts, tiny_training_config, tmp_path
    )
    assert len(obj.relevant) == cfg.kd_trajectories
    bank, subject = obj.bank, f"{first.token} {first.class_word}"
    earlier = {p for p in obj.relevant if subject in p}
    assert earlier and set(bank.prompt_contexts) == earlier  # exactly the earlier concept's prompts
    (vector, *rest) = bank.prompt_contexts.values()
    assert vector.abs().sum() > 0 and all(torch.equal(vector, v) for v in rest)  # one context per concept
    # Drawn by the teacher (the new update off): moving the student does not change it.
    _perturb_new_update(model)
    assert torch.allclose(teacher_contexts(model, obj.relevant, previous, cfg)[next(iter(earlier))], vector)
    # The bank's points: context only on the earlier concept's prompts, and not on all of them (text-only KD stays).
    has = [bool(bank.contexts[i].any()) for i in range(len(bank.point_prompts))]
    assert any(has) and all(bank.point_prompts[i] in earlier for i, h in enumerate(has) if h)
    assert any(not h and bank.point_prompts[i] in earlier for i, h in enumerate(has))
    # The context acts on the teacher: its target at a context point differs from the text-only prediction.
    i = has.index(True)
    with torch.no_grad(), model.as_teacher():
        text = lfs_loss.encode_prompts(model.bundle.tokenizer, model.bundle.text_encoder, [bank.point_prompts[i]])
        plain = model.bundle.unet(
            bank.latents[i : i + 1],
            bank.timesteps[i : i + 1],
            encoder_hidden_states=text,
            added_cond_kwargs={"image_embeds": [torch.zeros_like(bank.contexts[i : i + 1])]},
        ).sample
    assert (plain - bank.targets[i : i + 1]).abs().max() > 1e-4
    # The student's pass: each KD row carries its point's context (zeros or the concept's vector).
    spy = Spy(monkeypatch)
    spy.watch(model)
    obj.loss(1, np.random.default_rng(0))
    kd_rows = spy.contexts[-1][cfg.batch_size :]
    assert len(kd_rows) == cfg.kd_batch_size and any(r.any() for r in kd_rows)
    assert all(not r.any() or torch.allclose(r, vector.reshape(r.shape)) for r in kd_rows)
    # Plain lfs: no contexts anywhere in KD.
    plain_obj = LFSObjective(model, second, get_method("lfs"), cfg, list(CLASSES), previous)
    assert plain_obj.bank.contexts is None and plain_obj.bank.prompt_contexts == {}


def test_cross_kd_pins_earlier_concepts_prompts_on_the_new_shots_to_the_teacher(
    tiny_base_dir, two_concepts, tiny_training_config, tmp_path
):
    """lfs-cross-kd (issue 32 §4): the bank also holds the new concept's shots, noised, under the earlier
    concept's prompts, as many as the trajectories gave those prompts, each with the teacher's prediction there
    (moving the student does not change it); task 1 (nothing earlier) and plain lfs have none."""
    cfg, model, first, second, previous, obj = _second_task(
        "lfs-cross-kd", tiny_base_dir, two_concepts, tiny_training_config, tmp_path
    )
    method = get_method("lfs-cross-kd")
    bank, subject = obj.bank, f"{first.token} {first.class_word}"
    earlier = {p for p in obj.relevant if subject in p}
    n_traj = cfg.kd_trajectories * cfg.kd_teacher_steps
    m = sum(p in earlier for p in bank.point_prompts[:n_traj])
    assert m > 0 and len(bank.point_prompts) == n_traj + m  # as many cross points as earlier-prompt points
    assert set(bank.point_prompts[n_traj:]) <= earlier
    # x_t of a cross point is a noised shot: at its timestep, the shot latents explain it with some noise.
    shots = obj.latent_dist.mean * model.bundle.latent_scale
    x, t = bank.latents[n_traj:], bank.timesteps[n_traj:]
    alphas = model.bundle.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    implied = (x - alphas.sqrt() * shots[torch.arange(m) % len(shots)]) / (1 - alphas).sqrt()
    assert torch.allclose(implied.std(), torch.tensor(1.0), atol=0.35)  # noise-like, not another image
    # The target is the teacher's prediction (the new update off), not the student's.
    before = bank.targets[n_traj:].clone()
    _perturb_new_update(model)
    with torch.no_grad(), model.as_teacher():
        text = lfs_loss.encode_prompts(model.bundle.tokenizer, model.bundle.text_encoder, bank.point_prompts[n_traj:])
        again = model.bundle.unet(
            x, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [bank.contexts[n_traj:]]}
        ).sample
    assert torch.allclose(again, before, atol=1e-5)
    with torch.no_grad():
        student = model.bundle.unet(
            x, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [bank.contexts[n_traj:]]}
        ).sample
    assert (student - before).abs().max() > 1e-4  # the student differs there: KD has something to pin
    # Task 1 and plain lfs: no cross points.
    assert LFSObjective(model, second, get_method("lfs"), cfg, list(CLASSES), previous).bank.cross is None
    alone = LifelongModel.from_base(tiny_base_dir, "lfs-cross-kd")
    alone_prev = _begin(alone, first, method, cfg, tmp_path / "alone")
    assert LFSObjective(alone, first, method, cfg, list(CLASSES), alone_prev).bank.cross is None
