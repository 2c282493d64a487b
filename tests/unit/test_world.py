import numpy as np
import yaml

from components.world.concepts import plan_concepts, write_concepts
from components.world.render import Pose, object_coords, render, shape_mask
from components.world.scenes import all_instances, render_view, sample_instance, sample_scene
from components.world.vocabulary import BACKGROUNDS, CLASSES, COLOURS


def test_scenes_are_a_pure_function_of_the_seed():
    a = sample_scene(np.random.default_rng(7))
    b = sample_scene(np.random.default_rng(7))
    c = sample_scene(np.random.default_rng(8))
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    assert not np.array_equal(a.image, c.image) or a.caption != c.caption


def test_scene_is_32x32_rgb_and_caption_names_its_attributes():
    s = sample_scene(np.random.default_rng(0))
    assert s.image.shape == (32, 32, 3) and s.image.dtype == np.uint8
    assert s.cls in s.caption and s.colour in s.caption and f"on a {s.background} background" in s.caption


def test_object_pixels_carry_the_named_colour_and_background_the_background():
    pose = Pose(0.0, 0.0, 0.7, 0.0)
    img = render("square", "red", "white", pose)
    assert tuple(img[16, 16]) == COLOURS["red"]
    assert tuple(img[0, 0]) == BACKGROUNDS["white"]


def test_every_class_has_a_distinct_silhouette():
    u, v = object_coords(Pose(0.0, 0.0, 0.7, 0.0))
    masks = {c: shape_mask(c, u, v) for c in CLASSES}
    for a in CLASSES:
        assert masks[a].mean() > 0.05, a
        for b in CLASSES:
            if a < b:
                assert (masks[a] != masks[b]).mean() > 0.02, (a, b)


def test_instance_pattern_persists_and_unseen_split_is_a_quarter():
    inst = sample_instance(np.random.default_rng(0), unseen=True)
    assert inst.unseen
    rng = np.random.default_rng(1)
    views = [render_view(inst, rng)[0] for _ in range(3)]
    for v in views:  # both of the instance's colours show in every view
        flat = v.reshape(-1, 3).astype(int)
        for name in (inst.colour, inst.pattern_colour):
            assert (np.abs(flat - np.array(COLOURS[name])).sum(1) < 10).any(), name
    share = np.mean([i.unseen for i in all_instances()])
    assert 0.18 < share < 0.32


def test_concept_plans_repeat_classes_and_use_unseen_instances():
    specs = plan_concepts(6, seed=12345)
    assert len({s.name for s in specs}) == 6
    assert len({s.instance.key for s in specs}) == 6
    assert len({s.class_word for s in specs}) < 6
    assert all(s.instance.unseen for s in specs)
    assert plan_concepts(6, seed=12345) == specs


def test_write_concepts_writes_pngs_and_yaml(tmp_path):
    folders = write_concepts(tmp_path, n=3, shots=4, seed=3)
    assert [f.name[:3] for f in folders] == ["00-", "01-", "02-"]
    for f in folders:
        assert len(list(f.glob("*.png"))) == 4
        meta = yaml.safe_load((f / "concept.yaml").read_text())
        assert meta["class_word"] in CLASSES and f.name.endswith(meta["name"])
