"""Getting versioned data back and checking it is all there and intact: `dvc pull` of datasets and
checkpoints (e.g. after losing data/ or checkpoints/), every restored byte checked against the commit's
`.dvc` hashes, and `dvc status` against the workspace and the remote."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import yaml

from components.checksums import CorruptFile, file_digest
from components.versioning.git import git, read_blob
from components.versioning.proc import dvc_step, guarded


def restore(repo_root: str | Path, rel_paths: Sequence[str | Path], force: bool = False) -> None:
    """`dvc pull` these data paths (or their .dvc files) from the remote, e.g. after losing data/
    or checkpoints/. A .dvc file or .gitignore lost with its folder is first checked out from HEAD,
    so `rm -rf checkpoints` is recoverable in one call. Local modifications are not overwritten
    unless `force`."""
    root = Path(repo_root).resolve()
    dvc_files = [p if p.endswith(".dvc") else f"{p}.dvc" for p in (Path(r).as_posix() for r in rel_paths)]
    label = ", ".join(dvc_files)
    for dvc_file in dvc_files:
        guarded(label, "git checkout", lambda f=dvc_file: _checkout_if_missing(root, f))
    dvc_step(label, "dvc pull", ["pull", *(["--force"] if force else []), *dvc_files], root)
    for dvc_file in dvc_files:
        verify_restored(root, dvc_file)


def verify_restored(root: Path, dvc_file: str) -> None:
    """CorruptFile unless what `dvc_file` tracks hashes to what the commit recorded (HEAD's `.dvc`, else the
    working tree's). Why: DVC re-hashes a download only where the remote says `verify = true`, and never
    re-hashes its cache, so a flipped bit there is checked out as it is. The bad copy is removed whole
    (nothing reads it); the error names the file and both hashes."""
    text = read_blob(root, f"HEAD:{dvc_file}") or (root / dvc_file).read_text()
    for out in yaml.safe_load(text).get("outs", []):
        target = (root / dvc_file).parent / out["path"]
        expected, found = out["md5"], dvc_md5(target)
        if found == expected:
            continue
        path, expected, found = _first_bad_file(root, target, expected, found)
        remove_whole(target)
        raise CorruptFile(
            path,
            "md5",
            expected,
            found,
            f"{dvc_file} of the commit",
            f"the DVC cache or remote holds a corrupt copy: delete {_cache_object(root, expected).relative_to(root)} "
            "and pull again from a good remote",
        )


def dvc_md5(path: Path) -> str:
    """DVC 3's md5 of a file, or of a folder (md5 of its sorted (md5, relpath) JSON listing, + `.dir`)."""
    if path.is_file():
        return file_digest(path, "md5")
    if not path.is_dir():
        return "(missing)"
    return hashlib.md5(json.dumps(_listing(path), sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def _listing(folder: Path) -> list[dict]:
    files = (p for p in folder.rglob("*") if p.is_file())
    rows = ({"md5": file_digest(p, "md5"), "relpath": p.relative_to(folder).as_posix()} for p in files)
    return sorted(rows, key=lambda r: r["relpath"])


def _first_bad_file(root: Path, folder: Path, expected: str, found: str) -> tuple[Path, str, str]:
    """(file, recorded md5, found md5) of the first differing file of a restored folder, from the folder's
    manifest in the DVC cache when that manifest is itself intact; else the folder's own hashes."""
    manifest = _cache_object(root, expected)
    if not expected.endswith(".dir") or not manifest.is_file() or dvc_md5_bytes(manifest) != expected:
        return folder, expected, found
    recorded = {r["relpath"]: r["md5"] for r in json.loads(manifest.read_text())}
    present = {r["relpath"]: r["md5"] for r in _listing(folder)}
    for rel in sorted(set(recorded) | set(present)):
        if recorded.get(rel) != present.get(rel):
            return folder / rel, recorded.get(rel, "(not in the commit)"), present.get(rel, "(missing)")
    return folder, expected, found


def dvc_md5_bytes(manifest: Path) -> str:
    return hashlib.md5(manifest.read_bytes()).hexdigest() + ".dir"


def _cache_object(root: Path, md5: str) -> Path:
    """Where DVC 3's default local cache keeps the object `md5`."""
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def remove_whole(path: Path) -> None:
    """Remove a file or folder in one visible step: renamed aside first (atomic), so a reader finds the
    whole thing or nothing, never a half-deleted folder; then deleted."""
    if not path.exists() and not path.is_symlink():
        return
    aside = path.with_name(f".{path.name}.removing-{os.getpid()}")
    os.rename(path, aside)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside)
    else:
        aside.unlink()


def _checkout_if_missing(root: Path, dvc_file: str) -> None:
    """Bring back a deleted .dvc file and its .gitignore from HEAD; never touch existing files."""
    ignore = (PurePosixPath(dvc_file).parent / ".gitignore").as_posix()
    lost = [f for f in (dvc_file, ignore) if not (root / f).exists() and read_blob(root, f"HEAD:{f}") is not None]
    if lost:
        git(["checkout", "HEAD", "--", *lost], root)


def status_clean(repo_root: str | Path, targets: Sequence[str | Path] = ()) -> bool:
    """True when the workspace matches the .dvc files (`dvc status`) and the remote holds every
    tracked object (`dvc status -c`). Limit to `targets` to ignore unrelated pipeline stages."""
    root = Path(repo_root).resolve()
    names = [Path(t).as_posix() for t in targets]
    label = ", ".join(names) or str(root)
    if _status_json(root, label, "dvc status", ["status", "--json", *names]):
        return False
    return not _status_json(root, label, "dvc status --cloud", ["status", "--cloud", "--json", *names])


def _status_json(root: Path, label: str, step: str, args: list[str]) -> dict:
    """Parsed `dvc status --json`: {} means nothing to report."""
    text = dvc_step(label, step, args, root).stdout.decode().strip()
    return json.loads(text) if text else {}
