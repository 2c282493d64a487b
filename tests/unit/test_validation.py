"""Concept-folder validation: the good example passes, every kind of bad input is named in the report.

Bad inputs are built in tmp_path from a copy of examples/concepts/00-*. GX is imported once per
process (the validation definition is cached in components.validation.suite), so the file stays fast.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from components.validation import (
    MANIFEST_COLUMNS,
    ValidationError,
    build_manifest,
    normalise_image,
    require_valid,
    validate_concept,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = next((REPO / "examples" / "concepts").glob("00-*"))
ORIENTATION = 0x0112


@pytest.fixture
def good(tmp_path: Path) -> Path:
    folder = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, folder)
    return folder


def noise(size: tuple[int, int] = (32, 32), seed: int = 0) -> Image.Image:
    """A unique RGB image (width, height), so no two test images share a hash."""
    w, h = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def assert_rejected(folder: Path, file: str, *reason_words: str, **kwargs) -> str:
    report = validate_concept(folder, **kwargs)
    text = report.format()
    assert not report.ok, text
    line = [ln for ln in text.splitlines() if f"- {file}" in ln]
    assert line, f"{file} not named in:\n{text}"
    assert any(all(w in ln for w in reason_words) for ln in line), f"{reason_words} not in:\n{text}"
    return text


def write_yaml(folder: Path, data) -> None:
    (folder / "concept.yaml").write_text(yaml.safe_dump(data))


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- the good case -----------------------------------------------------------------------------


def test_example_folder_passes_and_manifest_describes_every_image(good: Path):
    report = validate_concept(good)
    assert report.ok and report.problems == [], report.format()
    assert "OK" in report.format()
    m = report.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert sorted(m["path"]) == sorted(p.name for p in good.glob("*.png"))
    meta = yaml.safe_load((good / "concept.yaml").read_text())
    assert set(m["name"]) == {meta["name"]} and set(m["class_word"]) == {meta["class_word"]}
    first = m.iloc[0]
    assert first["sha256"] == hashlib.sha256((good / first["path"]).read_bytes()).hexdigest()
    assert (first["format"], first["mode"], first["bytes"]) == ("PNG", "RGB", (good / first["path"]).stat().st_size)
    assert first["caption"] == f"a {meta['name']} {meta['class_word']}"


def test_sidecar_caption_is_used_and_require_valid_returns_the_report(good: Path):
    (good / "00.txt").write_text("a byruri cross on a white table\n")
    report = require_valid(good)
    assert report.ok
    assert build_manifest(good).set_index("path").loc["00.png", "caption"] == "a byruri cross on a white table"


def test_require_valid_raises_with_the_full_report(good: Path):
    (good / "notes.md").write_text("hello")
    with pytest.raises(ValidationError) as info:
        require_valid(good)
    assert not info.value.report.ok
    assert "notes.md" in str(info.value)


def test_suite_json_matches_the_expectation_classes():
    from components.validation.suite import build_suite_dict, load_suite_dict

    assert load_suite_dict() == build_suite_dict(), "run: python -m components.validation --write-suite"


# --- files -------------------------------------------------------------------------------------


def test_non_image_file_is_rejected(good: Path):
    (good / "notes.md").write_text("customer notes")
    assert_rejected(good, "notes.md", "not an image")


def test_truncated_png_is_rejected(good: Path):
    data = (good / "00.png").read_bytes()
    (good / "04.png").write_bytes(data[: len(data) // 2])
    assert_rejected(good, "04.png", "cannot decode")


def test_corrupt_bytes_named_png_are_rejected(good: Path):
    (good / "04.png").write_bytes(np.random.default_rng(1).bytes(600))
    assert_rejected(good, "04.png", "not a recognisable image")


def test_zero_byte_file_is_rejected(good: Path):
    (good / "04.png").write_bytes(b"")
    assert_rejected(good, "04.png", "zero-byte")


def test_tiny_image_is_rejected(good: Path):
    noise((8, 8)).save(good / "04.png")
    assert_rejected(good, "04.png", "width 8 px", "outside 16..4096")


def test_huge_image_is_rejected(good: Path):
    noise((5000, 10)).save(good / "04.png")
    text = assert_rejected(good, "04.png", "width 5000 px", "outside")
    assert "height 10 px" in text


def test_file_over_20_mib_is_rejected(good: Path):
    Image.fromarray(np.full((2700, 2700, 3), 7, np.uint8)).save(good / "04.bmp")  # ~21 MiB uncompressed
    assert_rejected(good, "04.bmp", "file size", "bytes is outside 1..20971520")


def test_symlink_pointing_outside_the_folder_is_rejected(good: Path, tmp_path: Path):
    outside = tmp_path / "outside.png"
    noise(seed=5).save(outside)
    (good / "04.png").symlink_to(outside)
    assert_rejected(good, "04.png", "symlink pointing outside the folder")
    assert "04.png" not in set(build_manifest(good)["path"])  # never read through the link


def test_empty_folder_is_rejected(tmp_path: Path):
    folder = tmp_path / "empty-concept"
    folder.mkdir()
    text = assert_rejected(folder, "empty-concept/", "folder is empty")
    assert "0 image(s)" in text


def test_missing_folder_is_reported_not_raised(tmp_path: Path):
    assert_rejected(tmp_path / "nope", "nope/", "does not exist")


# --- shot counts and duplicates --------------------------------------------------------------------


def test_too_few_shots_are_rejected(good: Path):
    for name in ("02.png", "03.png"):
        (good / name).unlink()
    assert_rejected(good, f"{good.name}/", "2 image(s)", "between 3 and 10")


def test_too_many_shots_are_rejected(good: Path):
    for i in range(4, 12):
        noise(seed=i).save(good / f"{i:02d}.png")
    assert_rejected(good, f"{good.name}/", "12 image(s)", "between 3 and 10")


def test_shot_limits_are_parameters(good: Path):
    assert_rejected(good, f"{good.name}/", "4 image(s)", "between 5 and 6", min_shots=5, max_shots=6)


def test_duplicate_images_are_rejected(good: Path):
    shutil.copy(good / "00.png", good / "04.png")
    text = assert_rejected(good, "04.png", "duplicate image", "00.png")
    assert "- 00.png: duplicate image" in text


# --- concept.yaml ------------------------------------------------------------------------------


def test_missing_concept_yaml_is_rejected(good: Path):
    (good / "concept.yaml").unlink()
    assert_rejected(good, "concept.yaml", "missing")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("- byruri\n- cross\n", ("must be a mapping", "list")),
        ("name: byruri\n", ("missing key 'class_word'",)),
        ("name: 123\nclass_word: cross\n", ("'name' must be a string", "int")),
        ("name: byruri\nclass_word: [cross]\n", ("'class_word' must be a string",)),
        ("name: byruri\nclass_word: cross\nclasword: x\n", ("unknown key",)),
        ("name: [unclosed\n", ("not valid YAML",)),
        ("", ("must be a mapping", "nothing")),
    ],
    ids=["list", "no-class-word", "int-name", "list-class-word", "unknown-key", "bad-yaml", "empty"],
)
def test_malformed_concept_yaml_is_rejected(good: Path, content: str, words: tuple[str, ...]):
    (good / "concept.yaml").write_text(content)
    assert_rejected(good, "concept.yaml", *words)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("a/b", ("path separator",)),
        ("../evil", ("'..'",)),
        ("ab..cd", ("'..'",)),
        ("a\\b", ("path separator",)),
        ("Byruri", ("lowercase letters",)),
        ("x", ("2-32 characters",)),
        ("a" * 33, ("2-32 characters",)),
    ],
    ids=["slash", "dotdot-prefix", "dotdot-inside", "backslash", "uppercase", "too-short", "too-long"],
)
def test_unsafe_concept_names_are_rejected(good: Path, name: str, words: tuple[str, ...]):
    write_yaml(good, {"name": name, "class_word": "cross"})
    assert_rejected(good, "concept.yaml", *words)


def test_already_learned_name_is_rejected(good: Path):
    name = yaml.safe_load((good / "concept.yaml").read_text())["name"]
    assert_rejected(good, "concept.yaml", "already learned", learned_names={name, "other"})
    assert validate_concept(good, learned_names={"other"}).ok


# --- everything at once, read only -------------------------------------------------------------------


def test_every_problem_is_collected_in_one_report(good: Path):
    (good / "notes.md").write_text("x")
    (good / "01.png").write_bytes(b"")
    noise((8, 8), seed=9).save(good / "05.png")
    (good / "sub").mkdir()
    write_yaml(good, {"name": "a/b"})
    text = validate_concept(good).format()
    for needle in ("notes.md", "01.png: zero-byte", "05.png: width 8", "sub/", "path separator", "class_word"):
        assert needle in text, text


def test_validation_never_modifies_the_folder(good: Path, tmp_path: Path):
    (good / "notes.md").write_text("x")
    noise(seed=3).convert("RGBA").save(good / "04.png")
    data = (good / "00.png").read_bytes()
    (good / "05.png").write_bytes(data[:200])
    shutil.copy(good / "01.png", good / "06.png")
    (tmp_path / "outside.txt").write_text("outside")
    (good / "07.png").symlink_to(tmp_path / "outside.txt")
    before = tree_hashes(good)
    names_before = sorted(p.name for p in good.iterdir())
    validate_concept(good)
    build_manifest(good)
    assert tree_hashes(good) == before
    assert sorted(p.name for p in good.iterdir()) == names_before


# --- accepted inputs and normalisation -------------------------------------------------------------


def _replace_first_shot(folder: Path, img: Image.Image, name: str, **save) -> Path:
    (folder / "00.png").unlink()
    img.save(folder / name, **save)
    return folder / name


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("L", ".png"), ("RGBA", ".png"), ("LA", ".png"), ("P", ".png"), ("1", ".png"), ("CMYK", ".jpg"), ("RGB", ".webp")],
)
def test_other_modes_pass_and_normalise_to_rgb(good: Path, mode: str, suffix: str):
    path = _replace_first_shot(good, noise((40, 24), seed=11).convert(mode), "00" + suffix)
    report = validate_concept(good)
    assert report.ok, report.format()
    assert mode in set(report.manifest["mode"])
    out = normalise_image(path)
    assert (out.mode, out.size) == ("RGB", (40, 24))
    assert np.asarray(out).dtype == np.uint8


def test_alpha_is_composited_on_white(good: Path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10] = (200, 0, 0, 255)  # left opaque red, right fully transparent black
    path = _replace_first_shot(good, Image.fromarray(rgba), "00.png")
    assert validate_concept(good).ok
    out = np.asarray(normalise_image(path))
    assert tuple(out[5, 2]) == (200, 0, 0) and tuple(out[5, 15]) == (255, 255, 255)


def test_sixteen_bit_passes_and_is_scaled_not_clipped(good: Path):
    values = np.array([[0, 257 * 128, 65535]] * 20, np.uint16).repeat(8, axis=1)  # 24 x 20
    path = _replace_first_shot(good, Image.fromarray(values), "00.png")
    report = validate_concept(good)
    assert report.ok, report.format()
    assert report.manifest.set_index("path").loc["00.png", "mode"].startswith("I")
    out = np.asarray(normalise_image(path))
    assert out.dtype == np.uint8 and out.shape == (20, 24, 3)
    assert tuple(out[0, [0, 8, 16], 0]) == (0, 128, 255)


def test_exif_rotated_image_passes_and_is_transposed_upright(good: Path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide x 20 high: left half red, right half blue
    pixels[:, :20] = (230, 20, 20)
    pixels[:, 20:] = (20, 20, 230)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    path = _replace_first_shot(good, Image.fromarray(pixels), "00.jpg", exif=exif, quality=95)
    assert validate_concept(good).ok
    out = normalise_image(path)
    assert out.mode == "RGB" and out.size == (20, 40)  # upright: 20 wide x 40 high
    arr = np.asarray(out).astype(int)
    assert arr[5, 10, 0] > 150 > arr[5, 10, 2]  # the stored left (red) is now on top
    assert arr[35, 10, 2] > 150 > arr[35, 10, 0]


def test_command_line_prints_the_report_and_exits_1_when_rejected(good: Path, capsys):
    from components.validation.__main__ import main

    assert main([str(good)]) == 0
    (good / "notes.md").write_text("x")
    assert main([str(good)]) == 1
    assert "notes.md" in capsys.readouterr().out
