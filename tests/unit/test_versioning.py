"""components.versioning against a real git repo and a real local DVC remote in tmp_path (no mocks).
Each DVC call costs about a second, so tests share setup through fixtures and check several
properties per versioning call."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.state import state_dir
from components.versioning import (
    VersioningError,
    dvc_env,
    ensure_dvc_repo,
    git_head,
    restore,
    status_clean,
    version_path,
)

CONCEPT = "data/concepts/dog"
IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@localhost"]


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _tree_sha256(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _write_concept(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (folder / f"img_{i}.bin").write_bytes(bytes([i]) * (100 + i))
    (folder / "captions.txt").write_text("a photo of sks dog\n")


def _git_state(repo: Path) -> dict[str, object]:
    """Everything a failed versioning call must leave untouched."""
    return {
        "log": _git(repo, "log", "--format=%H"),
        "status": _git(repo, "status", "--porcelain", "--untracked-files=all"),
        "staged": _git(repo, "diff", "--cached"),
        "dvc_files": sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*.dvc")),
    }


@pytest.fixture(scope="module")
def _isolated_env(tmp_path_factory):
    """No git identity and no global DVC config anywhere, as on a bare CI machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
        mp.delenv("LFSD_STATE_DIR", raising=False)
        yield


def _new_git_repo(root: Path) -> Path:
    root.mkdir()
    _git(root, "init", "-q")
    (root / "README.md").write_text("demo\n")
    _git(root, "add", "README.md")
    _git(root, "commit", "-q", "-m", "init")
    return root


def _init_dvc(repo: Path, remote_url: str | None = None) -> None:
    ensure_dvc_repo(repo, remote_url=remote_url)
    _git(repo, "add", ".dvc", ".dvcignore")
    _git(repo, "commit", "-q", "-m", "dvc init")


@pytest.fixture
def git_repo(_isolated_env, tmp_path) -> Path:
    """A git repo with one commit, no DVC yet."""
    return _new_git_repo(tmp_path / "repo")


@pytest.fixture(scope="module")
def _dvc_template(_isolated_env, tmp_path_factory) -> Path:
    repo = _new_git_repo(tmp_path_factory.mktemp("template") / "repo")
    _init_dvc(repo)
    return repo


@pytest.fixture
def repo(_dvc_template, tmp_path) -> Path:
    """A git + DVC repo with the default local remote, copied from one template (saves ~3 DVC calls
    per test; the remote URL is stored relative, so each copy gets its own empty remote)."""
    return Path(shutil.copytree(_dvc_template, tmp_path / "repo", symlinks=True))


def test_state_and_env_stay_inside_the_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("LFSD_STATE_DIR", raising=False)
    assert state_dir(tmp_path) == tmp_path / ".lfsd"
    env = dvc_env(tmp_path)
    assert env["DVC_SITE_CACHE_DIR"] == str(tmp_path.resolve() / ".lfsd" / "dvc-site-cache")
    assert env["DVC_NO_ANALYTICS"] == "1"
    monkeypatch.setenv("LFSD_STATE_DIR", "state")
    assert state_dir(tmp_path) == tmp_path / "state"
    monkeypatch.setenv("LFSD_STATE_DIR", str(tmp_path / "elsewhere"))
    assert state_dir(tmp_path) == tmp_path / "elsewhere"


def test_bad_paths_are_rejected_before_anything_runs(git_repo):
    repo = git_repo
    (repo / "outside.txt").write_text("x")
    before = _git_state(repo)
    for bad in ("missing", "../outside.txt", ".", ".git"):
        with pytest.raises(VersioningError) as err:
            version_path(repo, bad, "nope")
        assert err.value.step == "validate" and err.value.path == bad
    assert _git_state(repo) == before


def test_version_commits_only_its_dvc_file_pushes_and_is_idempotent(repo, _dvc_template):
    assert ensure_dvc_repo(repo) == "local"  # idempotent: keeps the existing default remote
    assert "url" not in (repo / ".dvc" / "config").read_text()  # no machine path committed
    assert "../.lfsd/dvc-remote" in (repo / ".dvc" / "config.local").read_text()
    # unrelated user changes, staged and unstaged, must survive untouched
    (repo / "notes.txt").write_text("wip\n")
    _git(repo, "add", "notes.txt")
    (repo / "README.md").write_text("edited\n")
    status_before = _git(repo, "status", "--porcelain")
    head0 = git_head(repo)
    _write_concept(repo / CONCEPT)

    rec = version_path(repo, CONCEPT, "data: dog v1")

    files = _tree_sha256(repo / CONCEPT)
    assert rec.changed and rec.md5.endswith(".dir") and rec.dvc_file == f"{CONCEPT}.dvc"
    assert rec.nfiles == 4 and rec.size == sum((repo / CONCEPT / f).stat().st_size for f in files)
    assert rec.commit == git_head(repo) and _git(repo, "rev-list", "--count", f"{head0}..HEAD") == "1"
    committed = _git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(committed) == ["data/concepts/.gitignore", f"{CONCEPT}.dvc"]
    assert _git(repo, "log", "-1", "--format=%ae") == "lfsd@localhost"  # fallback identity used
    assert _git(repo, "status", "--porcelain") == status_before
    remote = state_dir(repo) / "dvc-remote" / "files" / "md5"
    md5s = [hashlib.md5((repo / CONCEPT / f).read_bytes()).hexdigest() for f in files] + [rec.md5]
    assert all((remote / h[:2] / h[2:]).is_file() for h in md5s)
    assert not (state_dir(_dvc_template) / "dvc-remote").exists()  # the copy pushed to its own remote
    assert status_clean(repo)

    again = version_path(repo, CONCEPT, "data: dog v1 again")
    assert (again.md5, again.commit, again.changed) == (rec.md5, rec.commit, False)
    assert git_head(repo) == rec.commit

    (repo / CONCEPT / "captions.txt").write_text("changed\n")
    assert not status_clean(repo)


def test_restore_after_losing_data_and_checkpoints_is_byte_identical(repo):
    _write_concept(repo / CONCEPT)
    ckpt = repo / "checkpoints" / "lifelong.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(os.urandom(20_000))
    version_path(repo, CONCEPT, "data: dog")
    rec = version_path(repo, "checkpoints/lifelong.safetensors", "ckpt: lifelong")
    assert rec.nfiles == 1 and rec.size == 20_000 and not rec.md5.endswith(".dir")
    expected = {"data": _tree_sha256(repo / "data"), "checkpoints": _tree_sha256(repo / "checkpoints")}

    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / "checkpoints")  # the .dvc file goes with it; restore brings it back from git
    restore(repo, [CONCEPT, "checkpoints/lifelong.safetensors"])

    assert {"data": _tree_sha256(repo / "data"), "checkpoints": _tree_sha256(repo / "checkpoints")} == expected
    assert _git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("where", ["cache", "remote"])
def test_a_flipped_bit_in_the_cache_or_the_remote_is_never_restored(repo, where):
    """Integrity issue, point 1: DVC re-hashes neither its cache nor (unless `verify`) a download; lfsd's
    restore checks every byte against the commit's .dvc hash, names the file and removes the copy."""
    from components.checksums import CorruptFile

    folder = f"data/concepts/{where}-victim"
    _write_concept(repo / folder)
    version_path(repo, folder, f"data: {where}")
    victim = repo / folder / "img_1.bin"
    good_md5 = hashlib.md5(victim.read_bytes()).hexdigest()
    obj = f"files/md5/{good_md5[:2]}/{good_md5[2:]}"
    store = repo / ".dvc" / "cache" if where == "cache" else state_dir(repo) / "dvc-remote"
    if where == "remote":
        shutil.rmtree(repo / ".dvc" / "cache")  # a fresh clone: everything comes from the remote
    (store / obj).chmod(0o644)
    data = bytearray((store / obj).read_bytes())
    data[5] ^= 0x01
    (store / obj).write_bytes(bytes(data))
    (store / obj).chmod(0o444)  # as DVC keeps it: a rotten bit does not change the mode
    shutil.rmtree(repo / folder)

    with pytest.raises((CorruptFile, VersioningError)) as caught:
        restore(repo, [folder])
    if where == "cache":  # DVC checked the bad bytes out; lfsd's check names the file and both hashes
        message = str(caught.value)
        assert isinstance(caught.value, CorruptFile) and "img_1.bin" in message and good_md5 in message
    else:  # the remote's `verify = true` (set by ensure_dvc_repo) refuses the download itself
        assert caught.value.step == "dvc pull"
    assert not (repo / folder).exists()  # nothing corrupt is left for anything to read
    (store / obj).chmod(0o644)
    (store / obj).write_bytes(victim_bytes := bytes(data[:5]) + bytes([data[5] ^ 0x01]) + bytes(data[6:]))
    restore(repo, [folder])  # repaired object: restored and verified
    assert (
        hashlib.md5((repo / folder / "img_1.bin").read_bytes()).hexdigest()
        == good_md5
        == hashlib.md5(victim_bytes).hexdigest()
    )


def test_failed_push_rolls_everything_back(git_repo, tmp_path):
    repo = git_repo
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file: nothing can be created under it")
    _init_dvc(repo, remote_url=str(blocker / "remote"))
    assert "blocker" in (repo / ".dvc" / "config").read_text()  # explicit remotes are shared config
    _write_concept(repo / CONCEPT)
    (repo / "notes.txt").write_text("wip\n")
    _git(repo, "add", "notes.txt")
    before = _git_state(repo)

    with pytest.raises(VersioningError) as err:
        version_path(repo, CONCEPT, "data: dog")

    assert (err.value.step, err.value.path) == ("dvc push", CONCEPT)
    assert CONCEPT in str(err.value) and "dvc push" in str(err.value)
    assert _git_state(repo) == before
    assert not (repo / "data" / "concepts" / ".gitignore").exists()


def test_failed_commit_restores_the_previous_version(repo):
    _write_concept(repo / CONCEPT)
    version_path(repo, CONCEPT, "data: dog v1")
    dvc_v1 = (repo / f"{CONCEPT}.dvc").read_bytes()
    ignore_v1 = (repo / "data" / "concepts" / ".gitignore").read_bytes()
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    (repo / CONCEPT / "img_0.bin").write_bytes(b"new pixels")
    before = _git_state(repo)

    with pytest.raises(VersioningError, match="hook says no") as err:
        version_path(repo, CONCEPT, "data: dog v2")

    assert err.value.step == "git commit"
    assert _git_state(repo) == before
    assert (repo / f"{CONCEPT}.dvc").read_bytes() == dvc_v1
    assert (repo / "data" / "concepts" / ".gitignore").read_bytes() == ignore_v1


def test_drop_takes_data_out_in_one_commit_and_purge_keeps_shared_objects(repo):
    """An erasure's commit removes the .dvc file and the .gitignore entry and deletes the folder; the
    purge deletes its objects from the cache and the remote, except one another dataset still uses."""
    from components.versioning import version_paths
    from components.versioning.purge import drop_objects

    cat = "data/concepts/cat"
    _write_concept(repo / CONCEPT)
    _write_concept(repo / cat)
    (repo / cat / "own.bin").write_bytes(b"only the cat has this")
    version_paths(repo, [CONCEPT, cat], "two concepts")
    pointer = (repo / f"{cat}.dvc").read_bytes()
    cache, remote = repo / ".dvc" / "cache" / "files" / "md5", state_dir(repo) / "dvc-remote" / "files" / "md5"
    own = hashlib.md5(b"only the cat has this").hexdigest()
    shared = hashlib.md5((repo / cat / "img_0.bin").read_bytes()).hexdigest()
    assert (cache / own[:2] / own[2:]).is_file() and (remote / own[:2] / own[2:]).is_file()

    (repo / "erasures").mkdir()
    version_paths(repo, [], "forget cat", git_files={"erasures/cat.json": b"{}\n"}, drop=[cat])
    assert _git(repo, "ls-tree", "--name-only", "HEAD", "data/concepts/").splitlines() == [
        "data/concepts/.gitignore",
        f"{CONCEPT}.dvc",
    ]
    assert "/cat" not in _git(repo, "show", "HEAD:data/concepts/.gitignore").splitlines()
    assert not (repo / cat).exists() and not (repo / f"{cat}.dvc").exists()
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""

    deleted = drop_objects(repo, [pointer])
    assert deleted == {"cache": 2, "remote local": 2}  # cat's own file and its .dir listing
    for store in (cache, remote):
        assert not (store / own[:2] / own[2:]).exists()
        assert (store / shared[:2] / shared[2:]).is_file()  # the dog has the same bytes
    assert drop_objects(repo, [pointer]) == {"cache": 0, "remote local": 0}  # idempotent
    assert status_clean(repo, [CONCEPT])
