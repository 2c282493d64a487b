"""What folding the adapters buys at serving time: one UNet forward of a chain of N stacked LoRA
adapters vs the same chain folded into the K/V weights (`LifelongModel.folded`, what the pyfunc serves).

    python -m benchmarks.fold_speed --n 1,10,50
    python -m benchmarks.fold_speed --n 1,10,50 --threads 1   # on a busy machine: 2 threads that share
                                                                # their cores time mostly the contention

Each of the N synthetic tasks is added by `LifelongModel.begin_task` (its token and a LoRA with the very
LoraConfig training uses, rank `training.lora_rank`) and gets a random B, so every adapter is
non-trivial; the folded model is a folded copy of that very chain. Timed: one forward of a fixed batch
(fixed seed, latents, timesteps, learned-token prompts, random visual context) under `no_grad`, best of
`--best-of` timings of `--repeat` forwards each, stacked and folded timings interleaved (so a busy
machine slows both alike), at `runtime.threads` torch threads. Stacked, every cross-attention K/V pays N
extra low-rank products; folded, the UNet is the plain base again. Also printed: the largest
|stacked - folded| of the output (float rounding only).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch


def _inputs(model, batch: int, n: int) -> dict:
    unet, g = model.bundle.unet, torch.Generator().manual_seed(0)
    c, s = unet.config.in_channels, unet.config.sample_size
    prompts = [f"a <syn{1 + i % n}> star on a white background" for i in range(batch)]
    context = torch.randn(batch, 1, model.bundle.context_encoder.config.embed_dim, generator=g)
    return {
        "sample": torch.randn(batch, c, s, s, generator=g),
        "timestep": torch.randint(0, 1000, (batch,), generator=g),
        "encoder_hidden_states": model.bundle.encode_prompts(prompts),
        "added_cond_kwargs": {"image_embeds": [context]},
    }


@torch.no_grad()
def _time(unets: list, inputs: dict, repeat: int, best_of: int) -> tuple[list[float], list[torch.Tensor]]:
    """Best-of seconds per forward of each UNet (rounds interleaved), and each one's output."""
    outs = [u(**inputs).sample for u in unets]  # also the warm-up
    best = [float("inf")] * len(unets)
    for _ in range(best_of):
        for i, unet in enumerate(unets):
            start = time.perf_counter()
            for _ in range(repeat):
                unet(**inputs)
            best[i] = min(best[i], (time.perf_counter() - start) / repeat)
    return best, outs


def chain_of(base: Path, n: int, rank: int, seed: int = 0):
    """theta_n of n synthetic LoRA tasks on `base`, every adapter with random A and B, ready to sample."""
    from components.lifelong import LifelongModel

    model = LifelongModel.from_base(base, "finetune")
    torch.manual_seed(seed)
    scratch = Path(tempfile.gettempdir())
    for k in range(1, n + 1):
        model.begin_task(f"syn{k}", "star", str(scratch), str(scratch / f"syn{k}"), rank=rank)
        with torch.no_grad():
            for p in model.task_parameters(k):
                p.normal_(0, 0.1)  # a fresh LoRA's B is zero: it would add nothing but its cost
    model.bundle.requires_grad_(False)
    return model.eval()


def main() -> None:
    from components.config import load_params

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1,10,50", help="comma-separated chain lengths (the first is the reference)")
    ap.add_argument("--base", type=Path, default=Path("models/base"))
    ap.add_argument("--batch", type=int, default=8, help="UNet batch (sampling runs 2 x prompts: guidance)")
    ap.add_argument("--repeat", type=int, default=5, help="forwards per timing")
    ap.add_argument("--best-of", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: params runtime.threads)")
    args = ap.parse_args()

    params = load_params()
    threads = args.threads or params.runtime.threads
    torch.set_num_threads(threads)
    rows = []
    for n in (int(x) for x in args.n.split(",")):
        model = chain_of(args.base, n, params.training.lora_rank)
        folded_model = copy.deepcopy(model).folded()
        inputs = _inputs(model, args.batch, n)
        (stacked, folded), (want, got) = _time(
            [model.bundle.unet, folded_model.bundle.unet], inputs, args.repeat, args.best_of
        )
        rows.append((n, stacked, folded, float((got - want).abs().max())))
        print(f"N={n}: stacked {stacked * 1e3:.2f} ms  folded {folded * 1e3:.2f} ms", flush=True)

    s1, f1 = rows[0][1], rows[0][2]
    print(
        f"\nbatch {args.batch}, {threads} threads, rank {params.training.lora_rank}, "
        f"best of {args.best_of} x {args.repeat} forwards; ratios vs N={rows[0][0]}"
    )
    print(
        f"{'N':>4} {'stacked ms':>11} {'folded ms':>10} {'stacked/N1':>11} {'folded/N1':>10} {'stacked/folded':>15} "
        f"{'max|diff|':>10}"
    )
    for n, s, f, diff in rows:
        print(f"{n:>4} {s * 1e3:>11.2f} {f * 1e3:>10.2f} {s / s1:>11.2f} {f / f1:>10.2f} {s / f:>15.2f} {diff:>10.1e}")


if __name__ == "__main__":
    main()
