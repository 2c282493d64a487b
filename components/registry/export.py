"""`lfsd export`: a registered version's concepts as files other tools load (stock diffusers, A1111/Forge,
ComfyUI, kohya): per concept its LoRA and its token, or (`merged`) one LoRA for all of them, each with
metadata (lora_formats.py), plus a README that says per tool which file to use (export_readme.py).

What every tool reads, whatever the options: the LoRA in kohya keys by default (`lora_unet_*`: diffusers
converts them, ComfyUI, A1111/Forge and kohya read them natively; `--format diffusers` writes peft keys
only diffusers reads, named `*.diffusers.safetensors` so the name says it); one embedding file per concept,
one (1, D) token each (ComfyUI's `embedding:<file>` and A1111/Forge take one term per file, named after
it); `merged` adds one file with every token beside them, for diffusers. Files and folders get the modes
the caller's umask gives (a ComfyUI or A1111 service running as another user reads them in place).

The version is read and checked first (export_source.py); writing goes to a hidden folder next to
`out` that is renamed at the end, so a refused or broken version leaves `out` as it was (absent or
empty) and a half-written export is never seen.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from components.registry import lora_formats as lf
from components.registry.export_source import (  # noqa: F401 (the errors are part of this module's interface)
    ConceptExport,
    ExportError,
    ExportRefused,
    VersionExport,
    read_version,
    safe_name,
)

FORMATS = ("kohya", "diffusers")  # the first is the default: every tool reads it
LORA_FOLDER, EMBEDDINGS_FOLDER, MERGED_EMBEDDINGS_FOLDER = "lora", "embeddings", "embeddings-merged"
README = "README.md"
DIFFUSERS_SUFFIX = ".diffusers"  # in a diffusers-format LoRA's name: no other tool reads its keys


def lora_file(stem: str, fmt: str) -> str:
    """Where a LoRA goes, relative to the export: `lora/<stem>.safetensors`, `.diffusers` before the
    extension for the peft layout, so the file name says which tools read it."""
    return f"{LORA_FOLDER}/{stem}{DIFFUSERS_SUFFIX if fmt == 'diffusers' else ''}.safetensors"


def _metadata(v: VersionExport, title: str, concepts: list[ConceptExport], kind: str, date: str) -> dict[str, str]:
    return {
        "format": "pt",
        **lf.common_metadata(
            title=title,
            tokens=[c.token for c in concepts],
            class_words=[c.class_word for c in concepts],
            base=v.base,
            model_name=v.model_name,
            model_version=v.model_version,
            steps=[c.steps for c in concepts],
            kind=kind,
            date=date,
        ),
    }


def _write_lora(path: Path, v: VersionExport, fmt: str, title: str, concepts: list[ConceptExport], date: str) -> None:
    from safetensors.torch import save_file

    pairs = concepts[0].lora if len(concepts) == 1 else lf.concat_ranks([c.lora for c in concepts])
    tensors = lf.to_kohya(pairs) if fmt == "kohya" else lf.to_diffusers(pairs)
    common = _metadata(v, title, concepts, "lora", date)
    meta = lf.lora_metadata(common, pairs, tensors, [c.summary() for c in concepts])
    save_file(tensors, str(path), metadata=meta)


def _write_embeddings(
    path: Path, v: VersionExport, fmt: str, title: str, concepts: list[ConceptExport], date: str
) -> None:
    from safetensors.torch import save_file

    if fmt == "kohya" and len(concepts) == 1:
        tensors = lf.ti_a1111(concepts[0].embedding)
    else:  # diffusers, and the merged file: the one layout that names several tokens in one file
        tensors = lf.ti_diffusers({c.token: c.embedding for c in concepts})
    meta = _metadata(v, title, concepts, "textual-inversion", date)
    meta["lfsd.concepts"] = json.dumps([c.summary() for c in concepts])
    save_file(tensors, str(path), metadata=meta)


def write_files(v: VersionExport, folder: Path, fmt: str, merged: bool) -> list[str]:
    """Write the LoRA and embeddings files and the README into `folder`; returns their relative paths.
    Embeddings are always one file per concept (what ComfyUI, A1111/Forge and kohya read); `merged` writes
    one LoRA for every concept and, beside the per-concept embeddings, one file with every token."""
    from components.registry.export_readme import readme

    date = datetime.datetime.fromtimestamp(int(time.time())).isoformat()  # as kohya's modelspec.date
    (folder / LORA_FOLDER).mkdir(parents=True)
    (folder / EMBEDDINGS_FOLDER).mkdir()
    loras = [(v.stem, v.concepts)] if merged else [(safe_name(c.name), [c]) for c in v.concepts]
    written = []
    for title, concepts in loras:
        _write_lora(folder / lora_file(title, fmt), v, fmt, title, concepts, date)
        written.append(lora_file(title, fmt))
    for c in v.concepts:
        rel = f"{EMBEDDINGS_FOLDER}/{safe_name(c.name)}.safetensors"
        _write_embeddings(folder / rel, v, fmt, safe_name(c.name), [c], date)
        written.append(rel)
    if merged:
        (folder / MERGED_EMBEDDINGS_FOLDER).mkdir()
        rel = f"{MERGED_EMBEDDINGS_FOLDER}/{v.stem}.safetensors"
        _write_embeddings(folder / rel, v, fmt, v.stem, v.concepts, date)
        written.append(rel)
    (folder / README).write_text(readme(v, fmt, merged))
    return written + [README]


def umask() -> int:
    """The process's umask (read by setting it and putting it back: os has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_to_umask(folder: Path) -> None:
    """Give `folder` and everything in it the modes a plain mkdir/open would under the caller's umask
    (mkdtemp makes the staging folder 0700): under umask 022 a service running as another user (ComfyUI,
    A1111) reads the export in place; under 077 it stays private."""
    mask = umask()
    for p in [folder, *folder.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def check_out(out: Path) -> None:
    """`out` must not exist, or be an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists and is not an empty folder; export into a new one")


def export(uri: str, out: Path, fmt: str = FORMATS[0], merged: bool = False) -> list[str]:
    """Export `uri` into `out` (created; must not exist or be empty). Returns the written paths relative to
    `out`. On any error `out` is left as it was."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out).absolute()
    check_out(out)
    with tempfile.TemporaryDirectory(prefix="lfsd-export-read-") as work:
        version = read_version(uri, Path(work))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        written = write_files(version, staging, fmt, merged)
        open_to_umask(staging)
        check_out(out)  # still free: nothing else wrote there meanwhile
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written
