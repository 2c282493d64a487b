"""Hostile and unlucky concept folders (integrity issue, points 3, 4 and 8): names that are not UTF-8 or
hold control characters are refused and never printed raw; a folder refuted by its listing is refused
before any file is hashed or decoded; the copy step takes exactly the validated bytes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from components.onboarding.dataset import stage_dataset, submission_of
from components.validation import ValidationError, require_valid, rules, validate_concept

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = next((REPO / "examples" / "concepts").glob("00-*"))


@pytest.fixture
def good(tmp_path: Path) -> Path:
    folder = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, folder)
    return folder


def _noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def test_a_name_that_is_not_utf8_is_a_rejection_not_a_crash(good: Path):
    shutil.copy(good / "00.png", os.fsencode(good) + b"/\xff\xfe.png")
    text = validate_concept(good).format()
    assert "- \\xff\\xfe.png: file name is not UTF-8" in text
    assert "\udcff" not in text


def test_a_newline_in_a_name_cannot_forge_a_report_line(good: Path):
    forged = "x.png\n  - concept.yaml: OK"
    _noise(1).save(good / f"{forged}.png")
    report = validate_concept(good)
    text = report.format()
    assert not report.ok
    assert len(text.splitlines()) == 1 + len(report.problems)  # one line per problem, nothing forged
    assert "x.png\\n  - concept.yaml: OK.png: file name is not UTF-8 or holds a control character" in text


def test_escape_sequences_never_reach_the_report_raw(good: Path):
    _noise(2).save(good / "\x1b[2J\x1b[31mred.png")
    text = validate_concept(good).format()
    assert "\x1b" not in text
    assert "\\x1b[2J\\x1b[31mred.png" in text


def test_too_many_files_are_refused_from_the_listing_without_opening_any(good: Path):
    for i in range(3000):
        (good / f"{i:04d}.png").write_bytes(b"not an image at all")  # decoding any would be reported
    report = validate_concept(good)
    assert [str(p) for p in report.problems] == [f"{good.name}/: 3004 image(s); expected between 3 and 10 shots"]
    assert report.manifest["sha256"].isna().all()  # nothing hashed


def test_a_file_over_the_byte_limit_is_refused_without_reading_it(good: Path):
    with open(good / "04.png", "wb") as fh:  # sparse: the size is there, the bytes are never written
        fh.truncate(rules.MAX_BYTES + 1)
    report = validate_concept(good)
    assert [str(p) for p in report.problems] == [
        f"04.png: file size {rules.MAX_BYTES + 1} bytes is outside 1..{rules.MAX_BYTES} bytes"
    ]


def _stage(good: Path, tmp_path: Path):
    sub = submission_of(require_valid(good))
    ws = SimpleNamespace(data_dir=tmp_path / "data")
    return sub, ws


def test_the_copy_takes_exactly_the_validated_files(good: Path, tmp_path: Path):
    sub, ws = _stage(good, tmp_path)
    for i in range(4, 20):  # added after validation: not taken
        _noise(i).save(good / f"{i:02d}.png")
    target = stage_dataset(ws, sub)
    assert sorted(p.name for p in target.glob("shot-*.png")) == [f"shot-{i:02d}.png" for i in range(4)]


@pytest.mark.parametrize("how", ["swapped", "symlink", "fifo"])
def test_a_file_changed_after_validation_is_refused_and_nothing_is_staged(good: Path, tmp_path: Path, how: str):
    sub, ws = _stage(good, tmp_path)
    victim = good / "02.png"
    victim.unlink()
    if how == "swapped":
        _noise(99).save(victim)
    elif how == "symlink":
        victim.symlink_to(good / "00.png")
    else:
        os.mkfifo(victim)
    with pytest.raises(ValidationError) as caught:
        stage_dataset(ws, sub)
    assert "02.png" in str(caught.value) and "since it was validated" in str(caught.value)
    assert not (ws.data_dir / sub.name).exists()
    assert [p for p in ws.data_dir.iterdir()] == []  # the half-built copy is gone too
