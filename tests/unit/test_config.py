"""params.yaml is the one source of values; config.py only types and checks them."""

import dataclasses
import typing

import pytest
import yaml

from components.config import DERIVED, PARAMS_FILE, Params, load_params


def test_repo_params_load_into_typed_config():
    p = load_params()
    assert p.model.image_size == p.world.image_size
    assert isinstance(p.model.vae_channels, tuple)
    assert p.pretrain_base.steps > 0


def test_every_field_has_its_value_in_params_yaml_and_no_default_in_code():
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    sections = typing.get_type_hints(Params)
    for section in dataclasses.fields(Params):
        assert section.name in raw, section.name
        for f in dataclasses.fields(sections[section.name]):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, (
                f"{section.name}.{f.name}"
            )
            if (section.name, f.name) not in DERIVED:
                assert f.name in raw[section.name], f"params.yaml lacks {section.name}.{f.name}"


def test_an_empty_override_changes_nothing(tmp_path):
    empty = tmp_path / "params.yaml"
    empty.write_text("# nothing differs\n")
    assert load_params(empty) == load_params()


def test_an_override_changes_only_what_it_names(tmp_path):
    override = tmp_path / "params.yaml"
    override.write_text("training:\n  steps: 7\n")
    got, want = load_params(override), load_params()
    assert got.training == dataclasses.replace(want.training, steps=7)
    assert dataclasses.replace(got, training=want.training) == want


def test_unknown_key_is_rejected(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(PARAMS_FILE.read_text() + "\nsampling_typo:\n  steps: 3\n")
    with pytest.raises(KeyError, match="sampling_typo"):
        load_params(bad)
    bad.write_text("sampling:\n  stpes: 3\n")
    with pytest.raises(KeyError, match="stpes"):
        load_params(bad)


def test_wrong_type_is_rejected(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("sampling:\n  steps: many\n")
    with pytest.raises(TypeError, match=r"sampling\.steps"):
        load_params(bad)


def test_a_derived_value_cannot_be_set(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("model:\n  image_size: 64\n")
    with pytest.raises(KeyError, match=r"world\.image_size"):
        load_params(bad)
