"""Is a folder a usable base? Checked before a workspace is made on it, so a broken base fails at
`lfsd init` naming the file, not at the first onboarding deep inside a training worker."""

from __future__ import annotations

import json
from pathlib import Path

from components.model.pipeline import load


class BaseFolderError(ValueError):
    """A folder given as a base is not a loadable diffusion model."""


WEIGHT_FILES = {  # what diffusers / transformers save_pretrained write, safetensors first
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"),
}
CLASS_NAMES = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL"}


def check_base_folder(path: Path) -> None:
    """Raise BaseFolderError naming the first file that makes `path` not a Stable-Diffusion-style base (an
    lfsd bundle or a diffusers SD 1.x/2.x folder), then load it once (weights that do not load are named
    too). Why before anything is written: a workspace on a broken base fails at its first onboarding."""
    path = Path(path)
    if not path.is_dir():
        raise BaseFolderError(f"{path}: not a folder")
    configs = {}
    for part in ("unet", "vae", "text_encoder"):
        config = path / part / "config.json"
        if not config.is_file():
            raise BaseFolderError(
                f"{config}: missing (a base needs unet/, vae/, text_encoder/ and tokenizer/, "
                f"as StableDiffusionPipeline.save_pretrained writes them)"
            )
        try:
            configs[part] = json.loads(config.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise BaseFolderError(f"{config}: not valid JSON ({e})") from None
        if part in CLASS_NAMES and configs[part].get("_class_name") != CLASS_NAMES[part]:
            raise BaseFolderError(
                f"{config}: _class_name is {configs[part].get('_class_name')!r}, lfsd needs {CLASS_NAMES[part]!r}"
            )
        if not any((path / part / w).is_file() for w in WEIGHT_FILES[part]):
            raise BaseFolderError(f"{path / part}: no weights ({' or '.join(WEIGHT_FILES[part])})")
    tok = path / "tokenizer"
    if not ((tok / "tokenizer.json").is_file() or ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file())):
        raise BaseFolderError(f"{tok}: no CLIP tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    cross, hidden = configs["unet"].get("cross_attention_dim"), configs["text_encoder"].get("hidden_size")
    if cross != hidden:
        raise BaseFolderError(
            f"{path / 'unet' / 'config.json'}: cross_attention_dim {cross} does not match the text "
            f"encoder's hidden_size {hidden} ({path / 'text_encoder' / 'config.json'})"
        )
    try:
        load(path)
    except Exception as e:
        raise BaseFolderError(f"{path}: does not load as a diffusion model: {type(e).__name__}: {str(e)[:300]}") from e
