"""The nearness check before training (issue 32 §3), on real world concepts and the real evaluator:
a near concept (same class and body colour) is warned about, an unrelated one is not, the learned
concept's photos again (the same files, or re-encoded) are refused naming the learned concept and each
duplicate file, while other photos of the same object and a different object of the same colours (the
triangle the 50-concept pipeline run saw refused as a diamond) are warned about, not refused; what the
chain stores round-trips; the bounded protocol scores a near concept."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from components.config import REPO_ROOT, load_params

EVALUATOR = REPO_ROOT / "models" / "evaluator"


def _concept(out: Path, name: str, key: str, seed: int) -> Path:
    """A concept folder of the world instance `key` (class-colour-pattern-pattern_colour)."""
    from components.world.concepts import ConceptSpec, write_concepts
    from components.world.scenes import Instance

    inst = Instance(*key.split("-"))
    (folder,) = write_concepts(out / name, n=1, shots=4, seed=seed, specs=[ConceptSpec(name, inst.cls, inst)])
    return folder


def _submission(folder: Path):
    from components.onboarding.dataset import submission_of
    from components.validation import require_valid

    return submission_of(require_valid(folder, min_shots=3, max_shots=10, learned_names=[]))


def _stored(folder: Path):
    from components.evaluation.nearness import StoredConcept, thumbnails
    from components.onboarding.nearness_check import shot_embeddings, shot_images

    sub = _submission(folder)
    images = shot_images(32, sub)
    emb, thumbs = shot_embeddings(EVALUATOR, images), thumbnails(images)
    return sub, emb, StoredConcept(sub.name, sub.class_word, emb, tuple(h for _, h in sub.files), thumbs)


def _compare(mine, learned):
    from components.evaluation.nearness import compare

    cfg = load_params().nearness
    return compare(mine.embeddings, mine.thumbnails, mine.sha256, [learned], cfg.duplicate_within)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A learned concept, and arrivals: near (same class and colour), unrelated, the same object in other
    photos, the learned concept's own photos re-encoded as JPEG, and the red-half-yellow triangle after the
    red-half-yellow diamond."""
    from components.world.scenes import sample_instance

    out = tmp_path_factory.mktemp("nearness")
    import numpy as np

    rng = np.random.default_rng(5)
    learned = sample_instance(rng, unseen=True)
    draws = [sample_instance(rng, unseen=True) for _ in range(2000)]
    other = next(
        i for i in draws if learned.cls != i.cls and learned.colour != i.colour and learned.pattern != i.pattern
    )
    near = next(i for i in draws if (i.cls, i.colour) == (learned.cls, learned.colour) and i.pattern != learned.pattern)
    folders = {
        "learned": _concept(out, "kazoxu", learned.key, 1),
        "near": _concept(out, "mirupe", near.key, 2),
        "unrelated": _concept(out, "tedofa", other.key, 3),
        "same_object": _concept(out, "lonasu", learned.key, 4),
    }
    again = out / "copy" / "vikoby"
    shutil.copytree(folders["learned"], again)
    for p in sorted(again.glob("*.png")):
        buf = io.BytesIO()
        Image.open(p).convert("RGB").save(buf, "JPEG", quality=85)
        p.unlink()
        p.with_suffix(".jpg").write_bytes(buf.getvalue())
    (again / "concept.yaml").write_text(yaml.safe_dump({"name": "vikoby", "class_word": learned.cls}))
    folders["reencoded"] = again
    folders["diamond"] = _concept(out, "mitelo", "diamond-red-half-yellow", 35)
    folders["triangle"] = _concept(out, "fakomi", "triangle-red-half-yellow", 38)
    return folders


def test_a_near_concept_is_warned_about_and_an_unrelated_one_is_not(world):
    from components.onboarding.nearness_check import NearnessCheck, message

    cfg = load_params().nearness
    _, _, learned = _stored(world["learned"])
    said = {}
    for case in ("near", "unrelated"):
        _, _, mine = _stored(world[case])
        near = _compare(mine, learned)
        assert near[0].duplicates == (), case  # another object: no shot is a duplicate
        said[case] = (near[0].nearness, message(NearnessCheck(mine, "ev", near, []), cfg.warn_above, cfg.show))
    print(said)
    assert said["near"][0] >= cfg.warn_above > said["unrelated"][0], said
    assert said["near"][1].startswith("warning: mirupe is near <kazoxu>: ") and "scores them in full" in said["near"][1]
    assert said["unrelated"][1] is None


@pytest.mark.parametrize("case", ["learned", "reencoded"])
def test_the_learned_photos_again_are_refused_with_the_name_it_already_has(world, case):
    from components.evaluation.nearness import duplicate_of
    from components.onboarding.nearness_check import refusal

    _, _, learned = _stored(world["learned"])
    sub, _, mine = _stored(world[case])
    near = _compare(mine, learned)
    same = duplicate_of(near, len(sub.files))
    assert same is not None and same.name == "kazoxu" and len(same.duplicates) == 4, near
    text = str(refusal(sub, same, load_params().nearness.duplicate_within))
    assert "already learned as <kazoxu>" in text and all(f in text for f, _ in sub.files), text


@pytest.mark.parametrize("case,learned_as", [("same_object", "learned"), ("triangle", "diamond")])
def test_other_photos_or_another_object_of_the_same_colours_are_warned_not_refused(world, case, learned_as):
    """The evaluator puts these at shot cosine >= 0.9 (the old bound refused both); only nearness speaks."""
    from components.evaluation.nearness import duplicate_of

    _, _, learned = _stored(world[learned_as])
    sub, _, mine = _stored(world[case])
    cos = (mine.embeddings @ learned.embeddings.T).max(dim=1).values
    assert float(cos.sort().values[1]) >= 0.9, cos  # 3 of 4 shots: what refused the triangle before
    near = _compare(mine, learned)
    assert duplicate_of(near, len(sub.files)) is None and near[0].duplicates == (), near
    assert near[0].nearness >= load_params().nearness.warn_above, near


def test_byte_identical_shots_count_without_the_embeddings():
    import torch

    from components.evaluation.nearness import StoredConcept, compare, duplicate_of

    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    black, white = torch.zeros(4, 96, dtype=torch.uint8), torch.full((4, 96), 255, dtype=torch.uint8)
    stored = StoredConcept("kazoxu", "cube", a, ("h1", "h2", "h3", "h4"), black)
    near = compare(b, white, ("h1", "h2", "h3", "x"), [stored], duplicate_within=1.75)  # signatures never match
    assert near[0].duplicates == (0, 1, 2) and duplicate_of(near, 4).name == "kazoxu"
    assert duplicate_of(compare(b, white, ("h1", "x", "y", "z"), [stored], 1.75), 4) is None  # one of four: not a copy
    older = StoredConcept("kazoxu", "cube", a, ("h1", "h2", "h3", "h4"))  # kept before thumbnails: bytes only
    assert compare(b, black, ("x", "y", "z", "w"), [older], 1.75)[0].duplicates == ()


def test_the_chain_keeps_what_the_check_needs_and_nothing_from_another_evaluator(world, tmp_path):
    import torch

    from components.evaluation.nearness import load_shots, read_report
    from components.onboarding.nearness_check import NearnessCheck, keep

    _, _, learned = _stored(world["learned"])
    check = NearnessCheck(learned, "ev-1", [], ["older"])
    keep(tmp_path, check, 0.4)
    back = load_shots(tmp_path, "ev-1")
    assert back.name == "kazoxu" and back.sha256 == learned.sha256 and back.embeddings.equal(learned.embeddings)
    assert back.thumbnails.equal(learned.thumbnails) and back.thumbnails.dtype == torch.uint8
    assert load_shots(tmp_path, "ev-2") is None  # embedded by another evaluator: not comparable
    assert read_report(tmp_path)["not_compared"] == ["older"]
    assert read_report(tmp_path / "missing") == {}


def test_the_bounded_protocol_scores_the_near_concepts():
    from components.evaluation.bounded import including, step_plan

    plan = step_plan(list(range(9)), sample_size=2, full_every=0)  # 9 earlier concepts, the 2 stalest + the new
    assert plan == [0, 1, 9]
    assert including(plan, [6, 9]) == [0, 1, 6, 9]
    assert including(None, [6]) is None  # the full row already scores everything
