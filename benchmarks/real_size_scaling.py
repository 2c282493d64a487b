"""`benchmarks/real_size.py`'s measured unit costs scaled to the defaults of params.yaml (printed under
"defaults"), stating every scaling ("extrapolated"):

  student step at batch_size (+ kd_batch_size)   linear in the samples of the pass (per-sample cost x N),
                 only where B+K is not the default; per-sample cost falls with the batch on a CPU too (batch 1
                 costs more per sample than 2 or 4), so measure at the defaults where the time allows
  bank refresh = kd_trajectories x (text + kd_teacher_steps x one trajectory-step: the smaller of the bank's
                 and generation's measurement of that guided batch-2 pass, the first pays one-time kernel set-up);
                 amortised per training step = refresh / kd_refresh_every (linear in trajectories: a CPU
                 gains ~nothing from batching 16 trajectories; a GPU does: `benchmarks/gpu_check.py` runs the
                 real bank)
  s / image = text + sampling.steps x one step + decode
then: the lfs / finetune step-time ratio (target <= 1.6), the bank's share of lfs's step, and what the KD
knobs buy back (kd_trajectories 8/4, kd_teacher_steps 5, kd_batch_size 2), from the same unit costs.
"""

from __future__ import annotations

TARGET_RATIO = 1.6
KNOBS = [  # (kd_trajectories, kd_teacher_steps, kd_batch_size); None = the default
    (None, None, None),
    (8, None, None),
    (4, None, None),
    (None, 5, None),
    (8, 5, None),
    (4, 5, None),
    (None, None, 2),
    (4, 5, 2),
]


def _at_defaults(
    rows: dict, gen: dict, bank_text: float, d: dict, measured: dict, sampling_steps: int, clock: str = "wall"
) -> dict:
    """The defaults' step times, ratio and bank share from the measured unit costs (every scaling named).
    `clock`: "wall" (seconds) or "cpu" (process CPU seconds: robust to other processes on a shared CPU)."""
    ft, lfs = rows["finetune"], rows["lfs"]
    c = "" if clock == "wall" else "_cpu"
    # One guided trajectory-step (a batch-2 UNet pass): the bank's own measurement runs first and pays the
    # kernels' first-call set-up for that shape; generation runs the very same pass later, warm. A refresh of
    # 16 x 10 steps pays that set-up once, so the smaller of the two is the unit.
    bank_step = max(lfs[f"bank_refresh_measured{c}_s"] - bank_text, 0.0) / measured["ddim_steps"]
    step_unit = min(bank_step, gen[f"step{c}_s"])

    def costs(traj: int, tsteps: int, kd_batch: int) -> dict:
        student_lfs = lfs[f"student{c}_s_per_sample"] * (d["batch_size"] + kd_batch)
        student_ft = ft[f"student{c}_s_per_sample"] * d["batch_size"]
        refresh = traj * (bank_text + tsteps * step_unit)
        amortised = refresh / d["kd_refresh_every"]
        lfs_step = student_lfs + amortised
        return {
            "kd_trajectories": traj,
            "kd_teacher_steps": tsteps,
            "kd_batch_size": kd_batch,
            "lfs_student_step_s": round(student_lfs, 2),
            "finetune_step_s": round(student_ft, 2),
            "bank_refresh_s": round(refresh, 1),
            "bank_amortised_s_per_step": round(amortised, 2),
            "lfs_step_s": round(lfs_step, 2),
            "ratio_lfs_over_finetune": round(lfs_step / student_ft, 3),
            "bank_share_of_lfs_step": round(amortised / lfs_step, 3),
            "kd_samples_share_of_lfs_step": round(lfs[f"student{c}_s_per_sample"] * kd_batch / lfs_step, 3),
        }

    default = costs(d["kd_trajectories"], d["kd_teacher_steps"], d["kd_batch_size"])
    knobs = [
        costs(t or d["kd_trajectories"], s or d["kd_teacher_steps"], k or d["kd_batch_size"]) for t, s, k in KNOBS[1:]
    ]
    out = {
        "clock": "wall seconds" if clock == "wall" else "process CPU seconds (all threads)",
        "measured_ratio_at_measured_batch": round(lfs[f"student_step{c}_s"] / ft[f"student_step{c}_s"], 3),
        "bank_trajectory_step_s": round(step_unit, 3),
        "bank_trajectory_step_as_measured_in_bank_s": round(bank_step, 3),
        "bank_text_s_per_trajectory": round(bank_text, 3),
        **default,
        "target_ratio": TARGET_RATIO,
        "meets_target": default["ratio_lfs_over_finetune"] <= TARGET_RATIO,
        "seconds_per_image": round(gen[f"text{c}_s"] + sampling_steps * gen[f"step{c}_s"] + gen[f"decode{c}_s"], 2),
        "knobs": knobs,
    }
    if clock == "wall":
        extrapolated = []
        if measured["batch"] != d["batch_size"] or measured["kd_batch"] != d["kd_batch_size"]:
            extrapolated.append(
                f"student steps: measured at batch {measured['batch']} (+{measured['kd_batch']} KD), scaled "
                f"linearly to {d['batch_size']} (+{d['kd_batch_size']} KD) by per-sample cost"
            )
        extrapolated.append(
            f"bank refresh: measured 1 trajectory x {measured['ddim_steps']} guided DDIM steps, scaled to "
            f"{d['kd_trajectories']} x {d['kd_teacher_steps']} (text per trajectory + steps x step cost; the step "
            f"cost is the smaller of the bank's and generation's, the same batch-2 guided pass)"
        )
        extrapolated.append(
            f"s/image: measured {measured['ddim_steps']} DDIM steps + decode of 1 image, scaled to {sampling_steps}"
        )
        out["extrapolated"] = extrapolated
    return out
