import pytest

from benchmarks.forgetting import apply_overrides
from components.config import load_params


def test_overrides_change_only_the_named_keys():
    params = load_params()
    out = apply_overrides(params, ["training.lambda_kd=50", "training.kd_trajectories=32", "forgetting.rcf_seeds=4"])
    assert out.training.lambda_kd == 50.0 and isinstance(out.training.lambda_kd, float)
    assert out.training.kd_trajectories == 32 and out.forgetting.rcf_seeds == 4
    assert out.training.steps == params.training.steps and out.sampling == params.sampling
    templates = apply_overrides(params, ["training.kd_templates=['a {}', 'the {}']"]).training.kd_templates
    assert templates == ("a {}", "the {}")  # lists become the config's tuples, as in params.yaml


@pytest.mark.parametrize(
    "item, error, match",
    [
        ("training.lambda_kd", ValueError, "expected training.KEY=VALUE"),
        ("model.text_layers=3", ValueError, "expected training.KEY=VALUE"),
        ("training.lamda_kd=5", ValueError, "no key 'lamda_kd'"),
        ("training.steps=many", TypeError, "training.steps: expected int"),
        ("training.kd_templates=a {}", TypeError, "training.kd_templates: expected a list"),
        ("training.adapter=dora", ValueError, "dora"),
    ],
)
def test_bad_overrides_are_refused(item, error, match):
    with pytest.raises(error, match=match):
        apply_overrides(load_params(), [item])


def _row(forgetting, rcf, fidelity, ratio=None, seeds=3):
    def m(mean, std):
        return {"mean": mean, "std": std, "per_seed": [mean] * seeds}

    row = {"avg_forgetting": m(*forgetting), "rcf_preservation": m(*rcf), "new_concept_fidelity": m(fidelity, 0.0)}
    return row | ({"step_time_ratio_vs_finetune": ratio} if ratio else {})


def test_bars_apply_the_issue_thresholds():
    from benchmarks.report import bars

    report = {
        "wall_seconds": 600,
        "methods": {
            "finetune": _row((0.16, 0.09), (0.83, 0.01), 0.36, 1.0),
            "lfs": _row((0.01, 0.01), (0.94, 0.01), 0.33, 1.3),
            "prior-preservation": _row((0.12, 0.08), (0.86, 0.01), 0.5, 1.2),
        },
    }
    verdict = {claim.split(" by ")[0].split(" >=")[0].split(" <=")[0]: holds for claim, _, holds in bars(report)}
    assert verdict["lfs beats finetune on avg_forgetting"] is False  # 0.15 < 2 x 0.09
    assert verdict["lfs beats finetune on rcf_preservation"] is True  # 0.11 > 2 x 0.01
    assert verdict["lfs new-concept fidelity"] is True  # 0.33 >= 0.9 x 0.36
    assert verdict["step time ratio"] is True
    assert verdict["lfs avg forgetting"] is True
    assert verdict["3 methods x 3 seeds under 90 min"] is True
    report["methods"]["lfs"]["new_concept_fidelity"]["mean"] = 0.32  # < 90% of 0.36
    assert [h for c, _, h in bars(report) if c.startswith("lfs new-concept")] == [False]


def _forgetting_run(lfs, finetune):
    def m(vals):
        import numpy as np

        return {"avg_forgetting": {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_seed": vals}}

    return {
        "command": "lfsd benchmark forgetting --concepts outputs/concepts-7",
        "training": {"adapter": "full-kv"},
        "methods": {"lfs": m(lfs), "finetune": m(finetune)},
    }


def test_forgetting_ceiling_is_the_bar_for_a_method_that_forgets_nothing():
    from benchmarks.report import forgetting_ceiling

    bimodal = _forgetting_run([0.0, 0.0, 0.0], [0.07, 0.29, 0.12])  # std 0.094 > half the mean 0.16
    assert forgetting_ceiling(bimodal)[2] is False
    steady = _forgetting_run([0.0, 0.0, 0.0], [0.31, 0.28, 0.26])
    mean, need, holds = forgetting_ceiling(steady)
    assert holds is True and mean == pytest.approx(0.2833, abs=1e-3) and need < 0.05


def test_paired_wins_and_sign_test():
    from benchmarks.report import across, paired_wins, sign_test_p

    run = _forgetting_run([0.02, 0.02, 0.10], [0.01, 0.09, 0.10])  # one loss, one win, one tie
    assert paired_wins(run) == (1, 2)
    assert sign_test_p(3, 3) == pytest.approx(0.125) and sign_test_p(0, 4) == 1.0
    assert sign_test_p(23, 25) == pytest.approx(326 / 2**25)
    table = across({"a": run, "b": _forgetting_run([0.0] * 3, [0.3, 0.28, 0.26]), "no-lfs": {"methods": {}}})
    assert "| a | outputs/concepts-7 | full-kv |" in table and "no-lfs" not in table
    assert "4 of 5 seed runs" in table  # 1 of 2 strict in a, 3 of 3 in b


def test_benchmark_runs_land_in_mlflow_with_the_onboarding_metric_names(tmp_path, monkeypatch):
    """One MLflow run per method x seed in experiment `benchmark-forgetting` (a real sqlite store)."""
    from types import SimpleNamespace

    import mlflow

    from benchmarks.mlflow_runs import log_sequence_runs
    from components.config import load_params
    from components.registry import tracking_uri_default

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LFSD_STATE_DIR", str(tmp_path / "state"))
    nan = float("nan")

    def result(forgetting):
        metrics = {
            "concepts": ["a", "b"],
            "matrix": [[0.5, nan], [0.4, 0.9]],
            "avg_forgetting": forgetting,
            "final_fidelity": 0.65,
            "new_concept_fidelity": 0.7,
        }
        return SimpleNamespace(metrics=metrics, tasks=[SimpleNamespace(seconds=3.0), SimpleNamespace(seconds=4.0)])

    runs = {"lfs": [result(0.0), result(0.01)], "finetune": [result(0.1), result(0.2)]}
    ids = log_sequence_runs(
        "forgetting", runs, [0, 1], load_params().training, "lfsd benchmark forgetting", root=tmp_path
    )
    try:
        uri = tracking_uri_default(tmp_path)
        client = mlflow.MlflowClient(uri, uri)
        exp = client.get_experiment_by_name("benchmark-forgetting")
        found = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
        assert sorted(found) == ["finetune-seed0", "finetune-seed1", "lfs-seed0", "lfs-seed1"] and len(ids) == 4
        run = found["finetune-seed1"]
        assert run.data.metrics["avg_forgetting"] == 0.2 and run.data.params["training.seed"] == "1"
        assert run.data.tags["lfsd.method"] == "finetune" and run.data.tags["lfsd.kind"] == "benchmark"
        history = client.get_metric_history(run.info.run_id, "fidelity.a")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 0.5), (2, 0.4)]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_seconds")] == [1, 2]
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


SCALE_FIELDS = {
    "k",
    "confusion",
    "est_confusion",
    "avg_forgetting",
    "final_fidelity",
    "rcf_preservation",
    "fidelity_first",
    "train_s",
    "eval_s",
    "step_s",
    "load_s",
    "generate_s",
    "bytes_added",
    "peak_rss_mb",
}


@pytest.mark.slow
def test_the_scale_benchmark_records_every_field_per_step(tmp_path, tiny_base_dir):
    """`lfsd benchmark scale` on a tiny sequence (n = 4, the bounded protocol sampling 1 earlier concept):
    one row per step with every field the issue names, each of the right kind."""
    import json
    import math

    from benchmarks.scale import run
    from components.config import REPO_ROOT

    out = tmp_path / "scale.json"
    sets = [
        "training.steps=2",
        "training.batch_size=2",
        "training.kd_batch_size=2",
        "training.kd_trajectories=2",
        "training.kd_teacher_steps=2",
        "forgetting.images_per_prompt=1",
        "forgetting.rcf_seeds=1",
        "forgetting.steps=2",
        "forgetting.sample_size=1",
        "forgetting.full_every=0",
        "sampling.steps=2",
    ]
    run(
        4,
        3,
        ["lfs"],
        out,
        tiny_base_dir,
        REPO_ROOT / "models" / "evaluator",
        tmp_path / "work",
        shots=3,
        overrides=sets,
        log=lambda s: None,
    )
    report = json.loads(out.read_text())
    assert report["base_bytes"] > 0 and set(report["methods"]) == {"lfs"}
    for method in ("lfs",):
        rows = report["methods"][method]["steps"]
        assert [r["k"] for r in rows] == [1, 2, 3, 4]
        for r in rows:
            assert set(r) >= SCALE_FIELDS, SCALE_FIELDS - set(r)
            assert all(
                r[f] > 0 for f in ("train_s", "eval_s", "step_s", "load_s", "generate_s", "bytes_added", "peak_rss_mb")
            )
            assert r["step_s"] >= r["train_s"] + r["eval_s"]
            assert all(
                math.isfinite(r[f]) for f in ("avg_forgetting", "final_fidelity", "rcf_preservation", "fidelity_first")
            )
            assert 0 < r["eval_bounded_s"] <= r["eval_s"]
        assert rows[0]["avg_forgetting"] == 0.0 and rows[0]["fidelity_first"] == rows[0]["final_fidelity"]
        assert rows[0]["confusion"] == 0.0  # one concept: nothing to confuse it with
        assert all(0.0 <= r["confusion"] <= 1.0 and 0.0 <= r["est_confusion"] <= 1.0 for r in rows[1:])
        assert [r["bytes_total"] for r in rows] == [sum(x["bytes_added"] for x in rows[: i + 1]) for i in range(4)]
        # steps 3 and 4 sample 1 of their earlier concepts: the estimate comes from fewer scores
        assert [r["est_protocol"] for r in rows] == ["full", "full", "bounded (2 of 3)", "bounded (2 of 4)"]
        assert rows[1]["est_avg_forgetting"] == rows[1]["avg_forgetting"]
    # The paired cost probe on the chain this run left: theta_1 against theta_4, interleaved.
    from benchmarks.scale_cost import TASKS, measure

    cost = measure(
        tmp_path / "work" / "lfs", 1, tiny_base_dir, REPO_ROOT / "models" / "evaluator", sets, log=lambda s: None
    )
    assert (cost["k1"], cost["kn"], cost["method"]) == (1, 4, "lfs")
    assert all(cost["median"][label][t] > 0 for label in ("k1", "kn") for t in TASKS)
    assert cost["ratio_kn_over_k1"]["train"] == round(cost["median"]["kn"]["train"] / cost["median"]["k1"]["train"], 3)


def test_pooling_removal_runs_reads_each_seed_as_the_mean_of_its_draws():
    from benchmarks.forget_retrain import pooled

    def row(seed, dropped_b, retrained_b, erased_dropped):
        return {
            "seed": seed,
            "erased_fidelity": {"full": 0.5, "dropped": erased_dropped, "retrained": 0.2},
            "kept_fidelity": {
                "full": {"a": 0.4, "b": 0.6},
                "dropped": {"a": 0.4, "b": dropped_b},
                "retrained": {"a": 0.4, "b": retrained_b},
            },
        }

    # seed 0: draws -0.03 and +0.01 (mean -0.01); seed 1: -0.01 twice; seed 2: +0.00
    rows = [
        row(0, 0.57, 0.7, 0.3),
        row(0, 0.61, 0.7, 0.1),
        row(1, 0.59, 0.7, 0.3),
        row(1, 0.59, 0.7, 0.3),
        row(2, 0.60, 0.7, 0.1),
    ]
    out = pooled(rows)
    b = out["kept"]["dropped"]["concepts"]["b"]
    assert out["seeds"] == [0, 1, 2] and b["per_seed"] == pytest.approx([-0.01, -0.01, 0.0], abs=1e-9)
    assert b["mean"] == pytest.approx(-0.02 / 3) and b["below_zero"] == 2
    assert out["kept"]["dropped"]["meets_bound"] and out["kept"]["dropped"]["seeds_within_bound"] == 3
    assert not out["kept"]["retrained"]["meets_bound"] and out["kept"]["retrained"]["seeds_within_bound"] == 0
    erased = out["erased_dropped_minus_never"]
    assert erased["per_seed"] == pytest.approx([0.0, 0.1, -0.1]) and erased["positive"] == 1
    assert erased["sign_test_p_two_sided"] == 1.0


def test_the_guidance_probe_draws_as_the_protocol_when_its_guidance_is_the_protocols(tiny_bundle):
    """benchmarks/similar_guidance.py compares guidance variants on one chain: its `base` must be exactly what
    `generate` draws (so the other variants differ by their guidance only), `swap` with "" as the negative is
    `base`, and a contrast term of weight 0 adds nothing; a real negative changes the images."""
    import torch

    from benchmarks.similar_guidance import draw
    from components.model.sampling import generate

    b, prompts, seeds = tiny_bundle, ["a cube on a white background", "a ring"], [3, 4]
    refs = torch.rand(2, 2, 3, b.image_size, b.image_size) * 2 - 1
    want = generate(b, prompts, seeds, references=refs, steps=3, guidance_scale=3.0)
    same = {
        "base": draw(b, "base", prompts, ["a ring"] * 2, seeds, refs, 3, 3.0),
        "swap to ''": draw(b, "swap", prompts, ["", ""], seeds, refs, 3, 3.0),
        "contrast-0": draw(b, "contrast-0", prompts, ["a ring"] * 2, seeds, refs, 3, 3.0),
    }
    for name, got in same.items():
        assert torch.allclose(got, want, atol=1e-5), name
    other = draw(b, "contrast-2", prompts, ["a sphere", "a cube"], seeds, refs, 3, 3.0)
    assert not torch.allclose(other, want, atol=1e-3)


def test_compare_scale_finds_the_largest_difference_and_refuses_another_sequence():
    from benchmarks.compare_scale import compare

    def report(concepts, fidelity):
        steps = [
            {"k": i + 1, "concept": c, "avg_forgetting": f, "fidelity_first": 0.5}
            for i, (c, f) in enumerate(zip(concepts, fidelity))
        ]
        return {"methods": {"lfs": {"steps": steps}}}

    old = report(["a", "b", "c"], [None, 0.0101, 0.0200])
    worst, changed = compare(old, report(["a", "b", "c"], [None, 0.0102, 0.0260]))
    assert worst["avg_forgetting"][1] == 3 and abs(worst["avg_forgetting"][0] - 0.006) < 1e-9
    assert [(k, f) for k, f, _, _ in changed] == [(3, "avg_forgetting")]  # 0.0101 -> 0.0102 rounds the same
    assert compare(old, old) == ({}, [])
    with pytest.raises(ValueError, match="sequence"):
        compare(old, report(["a", "c", "b"], [None, 0.0101, 0.0200]))


def test_scale_pair_reads_the_full_rows_of_both_and_concept_1_kept():
    from benchmarks.scale_pair import paired

    def report(method, first, forgetting, concepts=("a", "b", "c")):
        steps = [
            {"k": i + 1, "concept": c, "fidelity_first": f, "avg_forgetting": g, "confusion": 0.1}
            for i, (c, f, g) in enumerate(zip(concepts, first, forgetting))
        ]
        return {"methods": {method: {"steps": steps}}}

    lfs = report("lfs", [0.4, 0.3, 0.2], [None, None, 0.05])  # k = 2 is a bounded step: not a full row
    kd = report("lfs-cross-kd", [0.4, 0.35, 0.36], [None, None, 0.06])
    p = paired(lfs, kd)
    assert p["methods"] == ("lfs", "lfs-cross-kd") and list(p["rows"]) == [1, 3]
    assert p["rows"][3]["avg_forgetting"] == (0.05, 0.06) and p["rows"][3]["fidelity_first"] == (0.2, 0.36)
    assert p["kept"] == pytest.approx((0.5, 0.9))
    with pytest.raises(ValueError, match="sequence"):
        paired(lfs, report("x", [0.4, 0.3, 0.2], [None, None, 0.05], concepts=("a", "c", "b")))
