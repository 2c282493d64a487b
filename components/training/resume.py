"""A task's resumable state: what a worker restarted mid-task needs to continue exactly where it was.

The state holds this task's trainable tensors (LoRA or K/V weights, the token's embedding row), the
optimizer moments, the step, both RNGs, the KD bank and the per-step losses. It is small (the
embedding matrix only ever gets a gradient in the new token's row, so only that row is kept).
"""

from __future__ import annotations

import numpy as np
import torch


def pack_optimizer(opt: torch.optim.Optimizer, emb: torch.nn.Parameter, token_id: int) -> dict:
    """A detached copy of the optimizer state, with the embedding's moments cut to the token's row
    (the gradient hook masks every other row, so their moments are zero)."""
    sd = opt.state_dict()
    emb_index = next(
        i
        for g, group in zip(sd["param_groups"], opt.param_groups)
        for i, p in zip(g["params"], group["params"])
        if p is emb
    )
    state = {}
    for i, st in sd["state"].items():
        st = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in st.items()}
        if i == emb_index:
            rows = [k for k, v in st.items() if torch.is_tensor(v) and v.shape == emb.shape]
            st = {k: (v[token_id].clone() if k in rows else v) for k, v in st.items()} | {"__token_row__": rows}
        state[i] = st
    return {"state": state, "param_groups": sd["param_groups"], "emb_shape": list(emb.shape)}


def unpack_optimizer(packed: dict, opt: torch.optim.Optimizer, token_id: int) -> None:
    state = {}
    for i, st in packed["state"].items():
        st = dict(st)
        for k in st.pop("__token_row__", []):
            full = torch.zeros(packed["emb_shape"], dtype=st[k].dtype)
            full[token_id] = st[k]
            st[k] = full
        state[i] = st
    opt.load_state_dict({"state": state, "param_groups": packed["param_groups"]})


def capture(
    step: int,
    task: int,
    token_id: int,
    named: dict[str, torch.nn.Parameter],
    emb: torch.nn.Parameter,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    bank,
    losses: list[dict],
) -> dict:
    return {
        "step": step,
        "task": task,
        "token_id": token_id,
        "lora": {n: p.detach().clone() for n, p in named.items()},
        "token": emb[token_id].detach().clone(),
        "optimizer": pack_optimizer(opt, emb, token_id),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "bank": bank.state() if bank is not None else None,
        "losses": [dict(r) for r in losses],
    }


def restore(
    state: dict,
    task: int,
    token_id: int,
    named: dict[str, torch.nn.Parameter],
    emb: torch.nn.Parameter,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    bank,
) -> tuple[int, list[dict]]:
    """Load `state` into the freshly begun task. Returns (first step to run, losses so far)."""
    if sorted(named) != sorted(state["lora"]):
        raise ValueError(f"resume state does not match task {task}'s trainable parameters")
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(state["lora"][n])
        emb[token_id] = state["token"]
    unpack_optimizer(state["optimizer"], opt, token_id)
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if bank is not None and state.get("bank") is not None:
        bank.restore(state["bank"])
    return int(state["step"]) + 1, [dict(r) for r in state.get("losses", [])]
