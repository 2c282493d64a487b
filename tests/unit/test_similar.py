"""The similar-concepts stress sequence (issue 32 §1): it shares attributes at the configured rate, and
only by chance at rate 0. Rates are measured from the instances themselves, not from the plan's flags."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import yaml

from components.world.scenes import sample_instance
from components.world.similar import ATTRIBUTES, DEFAULT_SIMILAR_RATE, plan_similar, shared_attributes

DRAWS = 200


@functools.cache
def _chance() -> float:
    """P(two independently drawn unseen instances share class, colour or pattern), by simulation."""
    rng = np.random.default_rng(99)
    pairs = [(sample_instance(rng, unseen=True), sample_instance(rng, unseen=True)) for _ in range(4000)]
    return float(np.mean([bool(shared_attributes(a, b)) for a, b in pairs]))


def _second_shares_with_first(rate: float) -> float:
    """Over DRAWS seeds, the share of 2-concept sequences whose second concept shares something with the first."""
    hits = []
    for seed in range(DRAWS):
        a, b = plan_similar(2, seed, rate)
        hits.append(bool(shared_attributes(a.instance, b.instance)))
    return float(np.mean(hits))


def _within(measured: float, expected: float, n: int = DRAWS) -> bool:
    """Within 3.5 binomial standard errors (plus the chance estimate's own error)."""
    se = math.sqrt(expected * (1 - expected) / n) + 0.02
    return abs(measured - expected) <= 3.5 * se


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.7, 1.0])
def test_share_rate_matches_the_configured_rate(rate):
    chance = _chance()
    assert 0.15 < chance < 0.4  # 1/8 class + 1/8 colour + ~1/40 pattern, less overlaps
    measured = _second_shares_with_first(rate)
    assert _within(measured, rate + (1 - rate) * chance), (rate, measured, chance)


def test_rate_zero_is_chance_and_high_rate_is_far_above_it():
    chance = _chance()
    assert _second_shares_with_first(0.0) < chance + 0.1
    assert _second_shares_with_first(0.7) > chance + 0.35


def test_planned_shares_hold_and_attributes_are_drawn_uniformly():
    flagged, attributes = 0, []
    for seed in range(DRAWS):
        specs = plan_similar(6, seed, 0.7)
        assert specs == plan_similar(6, seed, 0.7)  # a seed fixes the sequence
        assert len({s.instance.key for s in specs}) == 6 and len({s.name for s in specs}) == 6
        assert all(s.instance.unseen and s.class_word == s.instance.cls for s in specs)
        assert specs[0].shares is None
        for k, s in enumerate(specs[1:], start=1):
            if s.shares is not None:
                j, attribute = s.shares
                assert j < k and attribute in shared_attributes(s.instance, specs[j].instance)
                flagged += 1
                attributes.append(attribute)
    n = DRAWS * 5
    assert _within(flagged / n, 0.7, n)
    for a in ATTRIBUTES:
        assert _within(attributes.count(a) / len(attributes), 1 / 3, len(attributes)), a


def test_rate_outside_zero_one_is_refused():
    with pytest.raises(ValueError):
        plan_similar(3, 0, 1.5)


def test_cli_writes_the_stress_sequence(tmp_path):
    from typer.testing import CliRunner

    from components.cli.app import app

    out = tmp_path / "c"
    args = ["world", "concepts", "--out", str(out), "--n", "4", "--shots", "2", "--seed", "5", "--similar"]
    result = CliRunner().invoke(app, [*args, "--similar-rate", "1"])
    assert result.exit_code == 0, result.output
    specs = plan_similar(4, 5, 1.0)
    folders = sorted(out.iterdir())
    assert [f.name for f in folders] == [f"{i:02d}-{s.name}" for i, s in enumerate(specs)]
    assert yaml.safe_load((folders[1] / "concept.yaml").read_text())["world_instance"] == specs[1].instance.key
    assert result.output.count(" shares ") == 3
    assert CliRunner().invoke(app, ["world", "concepts", "--out", str(out), "--similar-rate", "0.5"]).exit_code == 2
    help_text = CliRunner().invoke(app, ["world", "concepts", "--help"]).output
    assert f"default {DEFAULT_SIMILAR_RATE}" in " ".join(help_text.split())
