"""The bounded forgetting protocol: what one step scores, so its cost does not grow with the chain.

The full protocol scores every concept learned so far after every task: O(k) generations at step k,
O(k^2) over a sequence, which at a concept a day soon costs more than the training. A step of the
bounded protocol scores the new concept plus a fixed number M of earlier ones, the M scored longest
ago (round robin: every concept is re-scored within ceil((k-1)/M) steps), and the classes of those
concepts for RCF. Its avg_forgetting is the mean over the concepts it scored (`sequence_metrics`),
an estimate of the full row's. Two things keep the promotion gate sound on an estimate:

- every `full_every`-th step scores the whole row (scheduled, exact);
- the concepts the nearness check found near the new one (`including`) are in the step's sample;
- `needs_full_row`: a step whose sample could put the mean over the bound (the sample mean plus two
  standard errors, or any one sampled concept, above `max_avg_forgetting`) scores the rest of the row
  before the gate decides, so a version passes on an estimate only when the estimate is clearly inside.
"""

from __future__ import annotations

import math


def step_plan(last_scored: list[int], sample_size: int, full_every: int) -> list[int] | None:
    """Ledger positions (0-based, learning order) the next step scores, the new concept last; None: all
    of them (the full row). `last_scored[j]`: the step at which earlier concept j was last scored
    (`last_scored_steps`); the M stalest are chosen, ties in learning order."""
    earlier = len(last_scored)
    if sample_size <= 0 or earlier <= sample_size or (full_every > 0 and (earlier + 1) % full_every == 0):
        return None
    stalest = sorted(range(earlier), key=lambda j: (last_scored[j], j))[:sample_size]
    return sorted(stalest) + [earlier]


def including(plan: list[int] | None, positions: list[int]) -> list[int] | None:
    """`plan` with these earlier concepts added (the ones the nearness check found near the new concept: a
    similar concept is where a drop is likeliest, so its step scores it whatever the rotation says)."""
    if plan is None:
        return None
    new = plan[-1]
    return sorted(set(plan[:-1]) | {p for p in positions if p != new}) + [new]


def last_scored_steps(names: list[str], records: list[dict]) -> list[int]:
    """For each concept name, the index of the last step record that scored it (-1: none did)."""
    last = {n: -1 for n in names}
    for i, record in enumerate(records):
        for c in record["concepts"]:
            if c["name"] in last:
                last[c["name"]] = i
    return [last[n] for n in names]


def needs_full_row(forgetting: list[float], bound: float) -> bool:
    """Whether the sampled concepts' forgetting (max earlier fidelity - now, one value per concept) leaves
    any doubt that the whole row's mean is within `bound`."""
    if not forgetting:
        return False
    n = len(forgetting)
    mean = sum(forgetting) / n
    sd = math.sqrt(sum((f - mean) ** 2 for f in forgetting) / (n - 1)) if n > 1 else 0.0
    return mean + 2 * sd / math.sqrt(n) > bound or max(forgetting) > bound


def last_row_forgetting(matrix: list[list[float]]) -> list[float]:
    """Per earlier concept scored in the last row: its best earlier fidelity minus its fidelity now
    (the terms `sequence_metrics` averages into avg_forgetting)."""
    import numpy as np

    a = np.asarray(matrix, dtype=float)
    k = a.shape[0]
    return [float(np.nanmax(a[: k - 1, j]) - a[-1, j]) for j in range(min(k, a.shape[1]) - 1) if not np.isnan(a[-1, j])]
