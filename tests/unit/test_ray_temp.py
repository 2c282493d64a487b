"""Ray's temp folder (issue 30 §6): created private, or refused when another local user could have put
something in it (Ray would reuse the auth token and sockets it finds there). The real check on a real
folder; another owner cannot be made without root, so that case changes only what os.getuid answers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from components.ray_train.runtime import UnsafeRayTemp, private_dir, ray_temp_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_temp_folder_is_created_private(tmp_path):
    made = private_dir(tmp_path / "state" / "ray")
    assert made.is_dir() and _mode(made) == 0o700 and os.lstat(made).st_uid == os.getuid()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o755, 0o1777])
def test_a_folder_others_can_write_into_is_refused_and_left_as_it_was(tmp_path, mode):
    planted = tmp_path / "lfsd-ray-someone"
    planted.mkdir()
    (planted / "auth_token").write_text("the attacker's token")
    os.chmod(planted, mode)
    with pytest.raises(UnsafeRayTemp, match=r"has mode \d+, not 700: others may have put something in it") as err:
        private_dir(planted)
    assert str(planted) in str(err.value) and "\n" not in str(err.value)
    assert _mode(planted) == mode and (planted / "auth_token").read_text() == "the attacker's token"


def test_a_link_in_place_of_the_folder_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "lfsd-ray-x").symlink_to(target)
    with pytest.raises(UnsafeRayTemp, match="not a folder"):
        private_dir(tmp_path / "lfsd-ray-x")


def test_a_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    """Unit test of the owner check only: this process cannot create a folder another user owns."""
    folder = tmp_path / "lfsd-ray-x"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: os.lstat(folder).st_uid + 1)
    with pytest.raises(UnsafeRayTemp, match="belongs to user id"):
        private_dir(folder)


def test_the_long_path_fallback_is_private_and_holds_rays_folder(tmp_path):
    """Ray makes its own temp folder 0777: it sits inside the private folder, whichever one is used."""
    from components.ray_train.runtime import private_home

    long_state = tmp_path / ("x" * 80)
    assert private_home(long_state).parent == Path("/tmp") and private_home(long_state).name.startswith("lfsd-")
    assert ray_temp_dir(long_state).parent == private_home(long_state)
    assert ray_temp_dir(Path("/w/.lfsd")) == Path("/w/.lfsd/private/ray")
