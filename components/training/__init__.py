"""The method: LFS-Diffusion's training of one lifelong task, theta_{k-1} + C_k -> theta_k.

lfs_loss     THE objective: denoising with ICGen context + data-free KD on relevant prompts (one file)
loop         the training loop of one task, free of any launcher
methods      lfs, its ablations and the baselines, as switches of the one objective
kd_prompts   the relevant prompts KD pins down in task k
teacher_bank the teacher's trajectories KD matches (and, for lfs-context-kd, its samples as ICGen context)
concept      a concept as the trainer sees it
resume       a task's resumable state (a restarted worker continues exactly where it was)
launch       what a launcher is given, and the in-process launcher (Ray's: `components/ray_train`)
system_metrics  MLflow's system metrics sampled where the training runs
in_process_sequence  a whole sequence through one method in-process, evaluated after every task (benchmarks, tests)
"""
