import pytest

from components.config import PARAMS_FILE, load_params


def test_repo_params_load_into_typed_config():
    p = load_params()
    assert p.model.image_size == p.world.image_size
    assert isinstance(p.model.vae_channels, tuple)
    assert p.pretrain_base.steps > 0


def test_unknown_key_is_rejected(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(PARAMS_FILE.read_text() + "\nsampling_typo:\n  steps: 3\n")
    with pytest.raises(KeyError, match="sampling_typo"):
        load_params(bad)


def test_wrong_type_is_rejected(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("sampling:\n  steps: many\n")
    with pytest.raises(TypeError, match="sampling.steps"):
        load_params(bad)
