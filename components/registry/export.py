"""`lfsd export`: a registered version's concepts as files other tools load (stock diffusers, A1111,
ComfyUI, kohya): per concept its LoRA and its token, or (`merged`) one LoRA and one embeddings file for
all of them, each with metadata (lora_formats.py), plus a README that says how to load them.

The version is read and checked first (export_source.py); writing goes to a hidden folder next to
`out` that is renamed at the end, so a refused or broken version leaves `out` as it was (absent or
empty) and a half-written export is never seen.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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

FORMATS = ("diffusers", "kohya")
LORA_FOLDER, EMBEDDINGS_FOLDER, README = "lora", "embeddings", "README.md"


def _metadata(v: VersionExport, title: str, concepts: list[ConceptExport], kind: str) -> dict[str, str]:
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
        ),
    }


def _write_lora(path: Path, v: VersionExport, fmt: str, title: str, concepts: list[ConceptExport]) -> None:
    from safetensors.torch import save_file

    pairs = concepts[0].lora if len(concepts) == 1 else lf.concat_ranks([c.lora for c in concepts])
    tensors = lf.to_kohya(pairs) if fmt == "kohya" else lf.to_diffusers(pairs)
    meta = lf.lora_metadata(_metadata(v, title, concepts, "lora"), pairs, tensors, [c.summary() for c in concepts])
    save_file(tensors, str(path), metadata=meta)


def _write_embeddings(path: Path, v: VersionExport, fmt: str, title: str, concepts: list[ConceptExport]) -> None:
    from safetensors.torch import save_file

    if fmt == "kohya" and len(concepts) == 1:
        tensors = lf.ti_a1111(concepts[0].embedding)
    else:  # diffusers, and every merged file: the one layout that names several tokens in one file
        tensors = lf.ti_diffusers({c.token: c.embedding for c in concepts})
    meta = _metadata(v, title, concepts, "textual-inversion")
    meta["lfsd.concepts"] = json.dumps([c.summary() for c in concepts])
    save_file(tensors, str(path), metadata=meta)


def write_files(v: VersionExport, folder: Path, fmt: str, merged: bool) -> list[str]:
    """Write the LoRA and embeddings files and the README into `folder`; returns their relative paths."""
    (folder / LORA_FOLDER).mkdir(parents=True)
    (folder / EMBEDDINGS_FOLDER).mkdir()
    groups = [(v.stem, v.concepts)] if merged else [(safe_name(c.name), [c]) for c in v.concepts]
    written = []
    for title, concepts in groups:
        _write_lora(folder / LORA_FOLDER / f"{title}.safetensors", v, fmt, title, concepts)
        _write_embeddings(folder / EMBEDDINGS_FOLDER / f"{title}.safetensors", v, fmt, title, concepts)
        written += [f"{LORA_FOLDER}/{title}.safetensors", f"{EMBEDDINGS_FOLDER}/{title}.safetensors"]
    (folder / README).write_text(readme(v, fmt, merged))
    return written + [README]


def check_out(out: Path) -> None:
    """`out` must not exist, or be an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists and is not an empty folder; export into a new one")


def export(uri: str, out: Path, fmt: str = "diffusers", merged: bool = False) -> list[str]:
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
        check_out(out)  # still free: nothing else wrote there meanwhile
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def readme(v: VersionExport, fmt: str, merged: bool) -> str:
    """The short README written next to the files: trigger words, then how to load them."""
    steps = v.steps or 30
    guidance = v.guidance_scale if v.guidance_scale is not None else 7.5
    first = v.concepts[0]
    prompt = f"a {first.token} {first.class_word}"
    rows = "\n".join(
        f"| `{c.token}` | {c.class_word} | `a {c.token} {c.class_word}` | "
        f"{LORA_FOLDER}/{v.stem if merged else safe_name(c.name)}.safetensors |"
        for c in v.concepts
    )
    if merged:
        lora_lines = f'pipe.load_lora_weights("{LORA_FOLDER}/{v.stem}.safetensors", adapter_name="lfsd")\n'
        ti_lines = (
            f'emb = load_file("{EMBEDDINGS_FOLDER}/{v.stem}.safetensors")  # {{token: vector}}\n'
            "pipe.load_textual_inversion(list(emb.values()), token=list(emb.keys()))\n"
        )
    else:
        names = [safe_name(c.name) for c in v.concepts]
        lora_lines = "".join(
            f'pipe.load_lora_weights("{LORA_FOLDER}/{n}.safetensors", adapter_name="{n}")\n' for n in names
        )
        weights = [1.0] * len(names)
        lora_lines += f"pipe.set_adapters({names!r}, adapter_weights={weights!r})  # all at once, as lfsd stacks them\n"
        token_arg = (lambda c: f', token="{c.token}"') if fmt == "kohya" else (lambda c: "")
        ti_lines = "".join(
            f'pipe.load_textual_inversion("{EMBEDDINGS_FOLDER}/{safe_name(c.name)}.safetensors"{token_arg(c)})\n'
            for c in v.concepts
        )
    version = f"{v.model_name} version {v.model_version}" if v.model_version else v.uri
    other = _other_tools(fmt, merged, safe_name(first.name), first.class_word, first.token)
    files = (
        "One merged LoRA holds every concept (ranks concatenated, exact)."
        if merged
        else "One LoRA and one embedding per concept."
    )
    return f"""# {v.stem}: lfsd concepts for other tools

Exported from `{v.uri}` ({version}) by `lfsd export --format {fmt}{" --merged" if merged else ""}`.
Base: `{v.base["name"]}` (lfsd folder hash `{v.base["hash"][:16]}...`, {v.base["architecture"]}): the
concepts were learned on this base and only reproduce lfsd's images on it.

| trigger | class word | prompt | LoRA |
|---|---|---|---|
{rows}

Every LoRA must be active at weight 1.0 (lfsd stacks them all); every token must be loaded.
They reproduce `lfsd generate PROMPT --model {v.uri}` (no `--concept`): lfsd's visual-context path
(ICGen reference images) has no counterpart in other tools.
{files}

## Stock diffusers

```python
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
{"from safetensors.torch import load_file" + chr(10) if merged else ""}
pipe = StableDiffusionPipeline.from_pretrained("path/to/{v.base["name"]}")  # the base named above
# lfsd's sampler: DDIM with these settings (any scheduler works; this one reproduces lfsd's images)
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False,
                                           steps_offset=1)
{lora_lines}{ti_lines}image = pipe("{prompt}", num_inference_steps={steps}, guidance_scale={guidance},
             generator=torch.Generator().manual_seed(0)).images[0]
image.save("{safe_name(first.name)}.png")
```

## Other tools

{other}
Metadata (`safetensors` header): `ss_*` (kohya), `modelspec.*`, `lfsd.*` (model, version, token, class word,
base hash). LoRA scales are folded into `lora_up`/`lora_B` with alpha = rank: load at strength 1.0.
"""


def _other_tools(fmt: str, merged: bool, stem: str, class_word: str, token: str) -> str:
    if fmt == "diffusers":
        return (
            "- **A1111 / ComfyUI / kohya**: export with `--format kohya` (without `--merged`: those tools take "
            "one embedding per file, named after the file).\n"
        )
    if merged:
        return (
            "- **A1111 / ComfyUI / kohya**: the merged LoRA is a kohya `networks.lora` file (A1111 `models/Lora`, "
            "ComfyUI `models/loras`, strength 1.0). Their embeddings hold one token per file, named after the "
            "file: export again without `--merged` for those.\n"
        )
    return (
        "- **A1111 / Forge**: copy `lora/*.safetensors` to `models/Lora` and `embeddings/*.safetensors` to "
        "`embeddings`. A1111 names an embedding after its file, so there the trigger is the file name "
        f"(`{stem}`, not `{token}`): `a {stem} {class_word} <lora:{stem}:1>`.\n"
        "- **ComfyUI**: `lora/` into `models/loras` (LoraLoader, strength 1.0), `embeddings/` into "
        f"`models/embeddings`; prompt `a embedding:{stem} {class_word}`.\n"
        "- **kohya sd-scripts**: the LoRA files are `networks.lora` weights (`--network_weights`, merge scripts).\n"
    )
