"""The pipeline's pure parts: the gate, relevant prompts through templates, workspace-relative ledgers,
and one git commit for a dataset + checkpoint pair."""

from __future__ import annotations

import json
import subprocess

import pytest


def test_gate_passes_only_when_every_bound_holds(params):
    import dataclasses

    from components.publishing.gate import decide

    cfg = dataclasses.replace(params.gate, max_avg_forgetting=0.1, min_rcf_similarity=0.8, min_new_concept_fidelity=0.3)
    good = {"avg_forgetting": 0.05, "rcf_similarity": 0.85, "new_concept_fidelity": 0.5}
    ok = decide(good, cfg)
    assert ok.passed and ok.reasons == () and ok.summary().startswith("passed")
    bad = decide({**good, "avg_forgetting": 0.2, "new_concept_fidelity": 0.1}, cfg)
    assert not bad.passed and len(bad.reasons) == 2
    assert "avg_forgetting 0.200" in bad.summary() and "new_concept_fidelity 0.100" in bad.summary()
    assert not decide({**good, "rcf_similarity": float("nan")}, cfg).passed


def test_the_gate_bounds_confusion_when_there_is_something_to_confuse(params):
    import dataclasses

    from components.publishing.gate import decide

    cfg = dataclasses.replace(params.gate, max_avg_forgetting=0.1, min_rcf_similarity=0.8, min_new_concept_fidelity=0.3)
    cfg = dataclasses.replace(cfg, max_confusion=0.25)
    good = {"avg_forgetting": 0.05, "rcf_similarity": 0.85, "new_concept_fidelity": 0.5, "confusion": 0.25}
    assert decide(good, cfg).passed and "confusion 0.250 <= 0.25" in decide(good, cfg).summary()
    confused = decide({**good, "confusion": 0.3125}, cfg)
    assert not confused.passed and confused.reasons == ("confusion 0.312 not <= 0.25",)
    unmeasured = decide({**good, "confusion": float("nan")}, cfg)  # a step scored before confusion existed
    assert unmeasured.passed and "confusion" not in unmeasured.summary()
    assert decide({k: v for k, v in good.items() if k != "confusion"}, cfg).passed  # a record from before


def test_relevant_prompts_render_every_subject_through_the_templates(tiny_bundle):
    from components.training.kd_prompts import relevant_prompts

    prompts = relevant_prompts(
        tiny_bundle.tokenizer,
        tiny_bundle.text_encoder,
        "star",
        ["star", "heart", "ring", "cross"],
        1,
        [("<zorudo> square", "square")],
        ("a {} on a white background", "a {} on a gray background"),
        max_previous=12,
        task=2,
    )
    assert prompts[:2] == ["a star on a white background", "a star on a gray background"]
    assert "a <zorudo> square on a gray background" in prompts and prompts[-1] == ""
    assert len(prompts) == 3 * 2 + 1  # class word, 1 related class, 1 previous concept; x2 templates; + ""


def test_earlier_subjects_are_bounded_near_classes_first_and_the_rest_rotate():
    from components.training.kd_prompts import earlier_subjects

    previous = [
        (f"<c{i}> {cls}", cls)
        for i, cls in enumerate(
            ["star", "ring", "cross", "heart", "star", "ring", "cross", "heart", "square", "square"]
        )
    ]
    assert earlier_subjects(previous[:3], ["star"], limit=3, task=4) == [
        s for s, _ in previous[:3]
    ]  # under the bound: all
    picked = earlier_subjects(previous, ["star", "heart"], limit=6, task=11)
    assert len(picked) == 6 and picked == sorted(
        picked, key=lambda s: int(s[2 : s.index(">")])
    )  # bounded, ledger order
    assert {"<c0> star", "<c3> heart", "<c4> star", "<c7> heart"} <= set(picked)  # the near classes always
    covered = set()
    for task in range(11, 11 + 3):  # 6 others, room 2: every earlier concept is pinned within 3 tasks
        covered |= set(earlier_subjects(previous, ["star", "heart"], limit=6, task=task))
    assert covered == {s for s, _ in previous}
    assert len(earlier_subjects(previous, ["star", "heart", "ring", "cross", "square"], limit=4, task=1)) == 4


def test_ledger_paths_become_workspace_relative_and_still_resolve(tmp_path, monkeypatch):
    from components.lifelong import Ledger, LedgerEntry, read_ledger, relativize_ledger

    root = tmp_path / "ws"
    ckpt = root / "checkpoints" / "01-abc"
    ckpt.mkdir(parents=True)
    (root / "data" / "concepts" / "abc").mkdir(parents=True)
    Ledger(
        str(root / "models" / "base"),
        "h",
        "lfs",
        [LedgerEntry(1, "abc", "star", "<abc>", str(root / "data/concepts/abc"), str(ckpt))],
    ).save(ckpt / "ledger.json")
    ledger = relativize_ledger(ckpt, root)
    assert ledger.base == "models/base"
    assert (ledger.entries[0].references, ledger.entries[0].checkpoint) == ("data/concepts/abc", "checkpoints/01-abc")
    assert json.loads((ckpt / "ledger.json").read_text())["entries"][0]["checkpoint"] == "checkpoints/01-abc"
    monkeypatch.chdir(tmp_path)  # not the workspace: paths resolve through the checkpoint's location
    resolved = read_ledger(ckpt)
    assert (resolved.base, resolved.entries[0].references) == (
        str(root / "models/base"),
        str(root / "data/concepts/abc"),
    )


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch):
    from components.versioning import ensure_dvc_repo

    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.setenv("LFSD_STATE_DIR", str(root / ".lfsd"))
    for args in (["init", "-q"], ["config", "user.email", "t@t.invalid"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    ensure_dvc_repo(root)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True)
    return root


def test_dataset_and_checkpoint_are_one_commit(dvc_repo):
    from components.versioning import version_paths

    (dvc_repo / "data" / "concepts" / "abc").mkdir(parents=True)
    (dvc_repo / "data" / "concepts" / "abc" / "shot-00.png").write_bytes(b"png")
    (dvc_repo / "checkpoints" / "01-abc").mkdir(parents=True)
    (dvc_repo / "checkpoints" / "01-abc" / "ledger.json").write_text("{}")
    data, ckpt = version_paths(dvc_repo, ["data/concepts/abc", "checkpoints/01-abc"], "onboard 01-abc")
    assert data.commit == ckpt.commit and data.changed and ckpt.changed
    files = subprocess.run(
        ["git", "show", "--name-only", "--format=", "HEAD"], cwd=dvc_repo, check=True, capture_output=True, text=True
    ).stdout.split()
    assert sorted(files) == [
        "checkpoints/.gitignore",
        "checkpoints/01-abc.dvc",
        "data/concepts/.gitignore",
        "data/concepts/abc.dvc",
    ]
    count = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=dvc_repo, capture_output=True, text=True).stdout
    assert int(count) == 2
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dvc_repo, capture_output=True, text=True).stdout == ""


def test_dvc_history_rows_follow_the_forgetting_matrix():
    from components.publishing.dvc_metrics import history_rows

    nan = float("nan")
    matrix = [[0.5, nan, nan], [0.4, 0.9, nan], [0.45, 0.7, 0.8]]
    steps = [{"rcf_similarity": s} for s in (1.0, 0.9, 0.8)]
    rows = history_rows(steps, matrix, ["a", "b", "c"])
    assert [r["task"] for r in rows] == [1, 2, 3] and [r["concept"] for r in rows] == ["a", "b", "c"]
    assert [r["new_concept_fidelity"] for r in rows] == [0.5, 0.9, 0.8]
    assert rows[0]["avg_forgetting"] == 0.0 and rows[1]["avg_forgetting"] == 0.1
    assert rows[2]["avg_forgetting"] == round(((0.5 - 0.45) + (0.9 - 0.7)) / 2, 4)  # best earlier score minus now
    assert rows[2]["mean_fidelity"] == round((0.45 + 0.7 + 0.8) / 3, 4) and rows[2]["rcf_similarity"] == 0.8


def test_history_and_sequence_metrics_agree_when_the_bounded_protocol_leaves_cells_unscored():
    """NaN BELOW the diagonal (a long chain's bounded rows): `metrics/history.json` and
    `metrics/forgetting.json` give the same average forgetting, a number, never nan."""
    import json
    import math

    from components.evaluation.forgetting import ConceptScore, StepEval, sequence_metrics, step_record
    from components.publishing.dvc_metrics import metrics_files
    from components.workspace.layout import HISTORY_FILE, METRICS_FILE

    rows = [
        {"a": 0.5},
        {"a": 0.4, "b": 0.9},
        {"b": 0.7, "c": 0.8},  # task 3 left `a` unscored
        {"a": 0.3, "c": 0.6, "d": 0.85},
    ]  # task 4 left `b` unscored
    steps = [
        StepEval(
            k + 1,
            [ConceptScore(n, f, 0.5, 0.3, confusion=0.25 * (k > 0) * (n == "a")) for n, f in row.items()],
            0.9,
            0.95 - 0.01 * k,
        )
        for k, row in enumerate(rows)
    ]
    metrics = sequence_metrics(steps)
    assert math.isnan(metrics["matrix"][2][0]) and math.isnan(metrics["matrix"][3][1])  # below the diagonal
    files = metrics_files({"steps": [step_record(s) for s in steps], "metrics": metrics})
    history = json.loads(files[HISTORY_FILE])
    summary = json.loads(files[METRICS_FILE])
    assert [r["avg_forgetting"] for r in history] == [
        0.0,
        0.1,
        round(0.9 - 0.7, 4),
        round(((0.5 - 0.3) + (0.8 - 0.6)) / 2, 4),
    ]
    assert history[-1]["avg_forgetting"] == summary["avg_forgetting"] == round(metrics["avg_forgetting"], 4)
    for k in range(len(steps)):  # every step's history row is the sequence metric of the chain up to it
        upto = sequence_metrics(steps[: k + 1])
        assert history[k]["avg_forgetting"] == round(upto["avg_forgetting"], 4)
        assert history[k]["confusion"] == (None if k == 0 else round(upto["confusion"], 4))  # one concept: none
    assert [r["confusion"] for r in history] == [None, 0.125, 0.0, round(0.25 / 3, 4)]
    assert summary["confusion"] == history[-1]["confusion"] and summary["margin"] is None  # NaN margins: null


def test_forgetting_history_puts_each_concept_at_every_task_since_it_was_learned():
    from components.publishing.run_story import forgetting_history

    nan = float("nan")
    history = forgetting_history({"concepts": ["a", "b"], "matrix": [[0.5, nan], [0.4, 0.9]]})
    assert history == [(1, {"fidelity.a": 0.5}), (2, {"fidelity.a": 0.4, "fidelity.b": 0.9})]


def test_onboarding_report_markdown_and_artifact_keys(monkeypatch):
    from components.chains.onboard import OnboardResult
    from components.publishing.summary import artifact_key, result_markdown, results_table

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    r = OnboardResult(
        "byruri",
        "onboarded",
        "checkpoints/01-byruri",
        "data/concepts/byruri",
        "1",
        "abc123",
        "passed: avg_forgetting 0.000 <= 0.1",
        "1",
        {"new_concept_fidelity": 0.81234},
    )
    md = result_markdown(r)
    assert "### byruri: model version 1" in md and "gate **passed" in md and "| new_concept_fidelity | 0.812 |" in md
    assert "(http://127.0.0.1:5000/#/runs/abc123)" in md
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000/")
    assert results_table([r])[0] == {
        "concept": "byruri",
        "status": "onboarded",
        "version": "1",
        "gate": "passed",
        "production": "1",
        "new_concept_fidelity": 0.812,
        "mlflow_run": "http://mlflow.internal:5000/#/runs/abc123",
    }
    assert artifact_key("onboard", "By_Ruri 2") == "onboard-by-ruri-2"


def test_a_removal_keeps_the_history_square_and_never_reuses_a_task_number():
    from components.evaluation.forgetting import sequence_metrics
    from components.lifelong.ledger import Ledger, LedgerEntry
    from components.onboarding.scoring import _steps_from_records, history_without

    def rec(task, scores):
        return {
            "task": task,
            "rcf_class_acc": 1.0,
            "rcf_similarity": 0.9,
            "concepts": [{"name": n, "fidelity": f, "clip_i": f, "text_alignment": 0.2} for n, f in scores],
        }

    history = [
        rec(1, [("a", 0.9)]),
        rec(2, [("a", 0.8), ("b", 0.7)]),
        rec(3, [("a", 0.8), ("b", 0.6), ("c", 0.5)]),
        rec(4, [("a", 0.7), ("b", 0.6), ("c", 0.5), ("d", 0.9)]),
    ]
    pruned = history_without(history, "b")
    assert [[c["name"] for c in r["concepts"]] for r in pruned] == [["a"], ["a", "c"]]  # b's row gone, d's replaced
    now = rec(4, [("a", 0.75), ("c", 0.45), ("d", 0.85)])
    m = sequence_metrics(_steps_from_records([*pruned, now]))
    assert m["concepts"] == ["a", "c", "d"] and len(m["matrix"]) == 3
    assert m["avg_forgetting"] == pytest.approx(((0.9 - 0.75) + (0.5 - 0.45)) / 2)
    assert history_without(history, "d") == [rec(1, [("a", 0.9)]), rec(2, [("a", 0.8), ("b", 0.7)])]  # the newest

    entries = [LedgerEntry(t, n, "cls", f"<{n}>", "", "") for t, n in ((1, "a"), (2, "b"), (3, "c"))]
    ledger = Ledger("base", "h", "lfs", entries)
    assert ledger.without("b").names() == ["a", "c"] and ledger.names() == ["a", "b", "c"]
    assert ledger.without("c").next_task() == 4 and ledger.without("b").next_task() == 4
    assert ledger.without("b").without("c").next_task() == 4 and ledger.next_task() == 4
    with pytest.raises(KeyError):
        ledger.without("zz")


REFUSALS = {  # what the command refuses -> the one line it prints (exit code 2 for each)
    "erased": (
        "components.erasure.record:ErasureRefused",
        "'x' was already erased on 2026-12-03 by alice (licence ended)",
        "refused: 'x' was already erased on 2026-12-03 by alice (licence ended)",
    ),
    "changed-base": (
        "components.lifelong:BaseMismatch",
        "/ws/models/base: base hash 1234... differs from abcd..., the base the chain was trained on",
        "error: /ws/models/base: base hash 1234... differs from abcd..., the base the chain was trained on",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refusal_is_one_line_and_exit_code_2(case, capsys):
    import importlib

    import typer

    from components.cli.running import _run_flow

    where, message, line = REFUSALS[case]
    module, name = where.split(":")
    error = getattr(importlib.import_module(module), name)

    def refuse():
        raise error(message)

    with pytest.raises(typer.Exit) as exit_:
        _run_flow(refuse)
    assert exit_.value.exit_code == 2
    assert capsys.readouterr().err.strip() == line


def test_a_chain_before_a_task_gives_that_task_its_number_again_and_a_removal_never_reuses_one():
    """`Ledger.before(k)`: what relearning after a removal starts from; `without`: a removed number stays taken."""
    from components.lifelong.ledger import Ledger, LedgerEntry

    entries = [
        LedgerEntry(k, f"c{k}", "cat", f"<c{k}>", f"data/concepts/c{k}", f"checkpoints/0{k}-c{k}") for k in (1, 2, 4)
    ]
    chain = Ledger("models/base", "h", "lfs", entries, retired=3)
    without = chain.without("c2")
    assert without.names() == ["c1", "c4"] and without.next_task() == 5
    start = without.before(4)
    assert start.names() == ["c1"] and start.next_task() == 4 and without.before(1).entries == []
