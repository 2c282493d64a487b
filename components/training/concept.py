"""A concept as the trainer sees it: a name, a class word and its few shots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from components.model.references import IMAGE_SUFFIXES, load_reference_folder


@dataclass(frozen=True)
class Concept:
    name: str
    class_word: str
    folder: Path

    @property
    def token(self) -> str:
        return f"<{self.name}>"

    def prompt(self, context: str = "") -> str:
        """'a <name> star' plus an optional context such as 'on a white background'."""
        return f"a {self.token} {self.class_word}" + (f" {context}" if context else "")

    def image_files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def load_images(self, size: int) -> torch.Tensor:
        """All shots, (K, 3, size, size) in [-1, 1]."""
        return load_reference_folder(self.folder, size, limit=len(self.image_files()))


def read_concept(folder: Path) -> Concept:
    """Read `concept.yaml` of an (already validated) concept folder."""
    folder = Path(folder)
    meta = yaml.safe_load((folder / "concept.yaml").read_text())
    return Concept(name=str(meta["name"]), class_word=str(meta["class_word"]), folder=folder)
