"""The real-size base and its benchmarks, in seconds: SD 1.5's configs (parameters counted on the meta device,
nothing allocated), the cost benchmark's one JSON on the tiny SD-shaped base, its scaling arithmetic, and the
GPU check's refusal on a machine without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_sd15_configs_are_stable_diffusion_1_5s_own():
    from components.model.sd_shaped import (
        SD15_PARAMETERS,
        count_parameters,
        sd15_text_config,
        sd15_unet_config,
        sd15_vae_config,
    )

    unet = sd15_unet_config()
    assert unet["block_out_channels"] == (320, 640, 1280, 1280) and unet["layers_per_block"] == 2
    assert unet["cross_attention_dim"] == 768 and unet["attention_head_dim"] == 8 and unet["sample_size"] == 64
    assert unet["down_block_types"][-1] == "DownBlock2D" and unet["up_block_types"][0] == "UpBlock2D"
    assert sd15_unet_config(256)["sample_size"] == 32  # the same network at 256 px
    vae = sd15_vae_config()
    assert vae["block_out_channels"] == (128, 256, 512, 512) and vae["latent_channels"] == 4
    assert vae["sample_size"] == 512 and vae["scaling_factor"] == 0.18215
    text = sd15_text_config()
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (768, 12, 12)
    assert (text["intermediate_size"], text["max_position_embeddings"], text["vocab_size"]) == (3072, 77, 49408)
    # The released SD 1.5 components' parameter counts (UNet ~860 M), counted without allocating a weight.
    assert count_parameters("sd15") == SD15_PARAMETERS


def test_an_unknown_size_is_refused_by_name(tmp_path):
    from components.model.sd_shaped import build_sd_shaped

    with pytest.raises(ValueError, match="size 'sd21'"):
        build_sd_shaped(tmp_path / "x", size="sd21")
    assert not (tmp_path / "x").exists()


def test_the_benchmark_prints_one_json_on_the_tiny_sd_shaped_base(sd_base_dir, params, capsys, tmp_path):
    from benchmarks.real_size import main

    out = tmp_path / "real_size.json"
    argv = ["--base", str(sd_base_dir), "--configs", "64:fp32", "--steps", "1", "--batch", "1", "--kd-batch", "1"]
    assert main([*argv, "--ddim-steps", "1", "--shots", "1", "--json", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)  # stdout is the JSON alone (progress goes to stderr)
    assert json.loads(out.read_text()) == report
    assert report["base"]["load_s"] > 0 and report["base"]["parameters"]["unet"] > 0
    (run,) = report["runs"]
    assert (run["resolution"], run["precision"], run["gradient_checkpointing"]) == (64, "fp32", False)
    for method, samples in (("finetune", 1), ("lfs", 2)):
        row = run["methods"][method]
        assert row["samples_per_step"] == samples and len(row["step_seconds"]) == 1
        assert row["student_step_s"] > 0 and row["checkpoint_bytes"] > 0
        assert row.get("rss_peak_gib", row.get("rss_peak_gib_process_lifetime", 0)) > 0
    assert (
        run["methods"]["lfs"]["bank_refresh_measured_s"] > 0
        and "bank_refresh_measured_s" not in run["methods"]["finetune"]
    )
    assert run["generation"]["decode_s"] > 0 and run["generation"]["ddim_steps_measured"] == 1
    t = params.training
    for key in ("at_defaults", "at_defaults_cpu_time"):
        a = run[key]
        assert (a["kd_trajectories"], a["kd_teacher_steps"], a["kd_batch_size"]) == (
            t.kd_trajectories,
            t.kd_teacher_steps,
            t.kd_batch_size,
        )
        assert a["ratio_lfs_over_finetune"] > 0 and 0 <= a["bank_share_of_lfs_step"] < 1
        assert a["seconds_per_image"] > 0
        knobs = {(k["kd_trajectories"], k["kd_teacher_steps"], k["kd_batch_size"]) for k in a["knobs"]}
        assert {(8, t.kd_teacher_steps, t.kd_batch_size), (4, t.kd_teacher_steps, t.kd_batch_size)} <= knobs
        assert (t.kd_trajectories, 5, t.kd_batch_size) in knobs
    assert any("scaled linearly" in e for e in run["at_defaults"]["extrapolated"])  # batch 1 -> the default


def test_the_defaults_are_scaled_from_unit_costs_as_documented():
    from benchmarks.real_size_scaling import _at_defaults

    rows = {
        "finetune": {"student_s_per_sample": 1.0, "student_step_s": 1.0},
        "lfs": {"student_s_per_sample": 1.0, "student_step_s": 2.0, "bank_refresh_measured_s": 1.1},
    }
    gen = {"text_s": 0.1, "step_s": 0.6, "decode_s": 2.0}
    d = {"batch_size": 4, "kd_batch_size": 4, "kd_trajectories": 16, "kd_teacher_steps": 10, "kd_refresh_every": 50}
    measured = {"batch": 1, "kd_batch": 1, "ddim_steps": 2}
    a = _at_defaults(rows, gen, 0.1, d, measured, sampling_steps=30)
    # bank step (1.1 - 0.1) / 2 = 0.5 (< generation's 0.6); refresh 16 x (0.1 + 10 x 0.5) = 81.6; / 50 = 1.632
    assert a["bank_trajectory_step_s"] == 0.5 and a["bank_refresh_s"] == 81.6
    assert a["lfs_step_s"] == pytest.approx(8 + 1.632, abs=0.01) and a["finetune_step_s"] == 4.0
    assert a["ratio_lfs_over_finetune"] == pytest.approx(9.632 / 4, abs=1e-3)
    assert a["bank_share_of_lfs_step"] == pytest.approx(1.632 / 9.632, abs=1e-3) and not a["meets_target"]
    assert a["seconds_per_image"] == pytest.approx(0.1 + 30 * 0.6 + 2.0)
    (four_five,) = [
        k for k in a["knobs"] if (k["kd_trajectories"], k["kd_teacher_steps"], k["kd_batch_size"]) == (4, 5, 4)
    ]
    assert four_five["bank_refresh_s"] == pytest.approx(4 * (0.1 + 5 * 0.5), abs=0.05)


def test_a_configuration_names_resolution_precision_batch_and_checkpointing():
    from benchmarks.real_size_config import Config

    assert Config.parse("512:bf16:4+4:ckpt") == Config(512, "bf16", 4, 4, True)
    assert Config.parse("256:fp32:1+2") == Config(256, "fp32", 1, 2, None)
    assert Config.parse("256:fp32:nockpt") == Config(256, "fp32", None, None, False)
    assert Config.parse("64:fp32") == Config(64, "fp32")


def test_the_gpu_check_refuses_at_once_without_cuda():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU visible, even on a machine that has one
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == ["no CUDA device: run this on a GPU machine"] and proc.stdout == ""
