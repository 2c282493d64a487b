"""The migration scorecard's arithmetic (components/evaluation/scorecard.py) and the side chain's names
(components/workspace/side_chain.py): pure logic, no model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from components.evaluation.scorecard import CHAIN_ROW, columns, render_markdown, render_text, scorecard


def _step(task: int, rcf: float, **fidelity: float) -> dict:
    concepts = [{"name": n, "fidelity": f, "confusion": 0.1 * i} for i, (n, f) in enumerate(fidelity.items())]
    return {"task": task, "concepts": concepts, "rcf_class_acc": 1.0, "rcf_similarity": rcf}


OLD = [_step(1, 0.9, a=0.8), _step(3, 0.8, a=0.6, c=0.7)]  # b erased: its rows are gone from the history
NEW = [_step(1, 0.95, a=0.9), _step(2, 0.85, a=0.85, c=0.5)]


def _cell(rows, concept, metric):
    (row,) = [r for r in rows if r["concept"] == concept and r["metric"] == metric]
    return row


def test_per_concept_fidelity_forgetting_and_deltas():
    rows = scorecard(OLD, NEW)
    assert _cell(rows, "a", "fidelity") == pytest.approx(
        {"concept": "a", "metric": "fidelity", "old": 0.6, "new": 0.85, "delta": 0.25}
    )
    assert _cell(rows, "a", "forgetting")["old"] == pytest.approx(0.2)  # best earlier 0.8, now 0.6
    assert _cell(rows, "a", "forgetting")["new"] == pytest.approx(0.05)
    assert _cell(rows, "c", "forgetting")["old"] == 0.0  # learned last: nothing to forget yet
    assert _cell(rows, "c", "confusion")["new"] == pytest.approx(0.1)
    assert [r["concept"] for r in rows][:6] == ["a"] * 3 + ["c"] * 3  # the new chain's order


def test_chain_rows_rcf_and_averages():
    rows = scorecard(OLD, NEW)
    assert _cell(rows, CHAIN_ROW, "rcf_similarity")["new"] == pytest.approx(0.85)
    assert _cell(rows, CHAIN_ROW, "rcf_preservation")["old"] == pytest.approx(0.85)  # mean of 0.9 and 0.8
    assert _cell(rows, CHAIN_ROW, "avg_forgetting")["old"] == pytest.approx(0.2)  # over a only (c is last)
    assert _cell(rows, CHAIN_ROW, "mean_fidelity")["new"] == pytest.approx(0.675)


def test_a_concept_the_old_chain_never_held_is_refused():
    with pytest.raises(ValueError, match="does not"):
        scorecard(OLD, [_step(1, 0.9, z=0.5)])


def test_unmeasured_confusion_prints_as_na():
    old = [{**_step(1, 0.9, a=0.8), "concepts": [{"name": "a", "fidelity": 0.8}]}]
    rows = scorecard(old, old)
    assert math.isnan(_cell(rows, "a", "confusion")["old"])
    assert "n/a" in render_text(rows, "old", "new") and "| a | confusion | n/a | n/a | n/a |" in render_markdown(
        rows, "old", "new"
    )
    assert set(columns(rows)) == {"concept", "metric", "old", "new", "delta"}


def test_side_chain_folders_and_labels():
    from components.config import load_params
    from components.workspace.layout import Workspace
    from components.workspace.side_chain import BadLabel, side_chain

    ws = Workspace(Path("/w"), load_params())
    new = side_chain(ws, "sd15-house")
    assert new.checkpoint_dir == Path("/w/checkpoints-sd15-house") and new.base_dir == Path(
        "/w/models/bases/sd15-house"
    )
    assert new.data_dir == ws.data_dir and ws.base_dir == Path("/w/models/base")
    for bad in ("", "Upper", "a/b", "-x", "x" * 41):
        with pytest.raises(BadLabel):
            side_chain(ws, bad)
