"""A second chain beside the workspace's own: the same concepts learned on another base (`lfsd migrate`).

Where it lives (docs/operations.md, "Migrating to a new base"):
- its base: `models/bases/<label>/`, versioned with DVC (`models/bases/<label>.dvc` in git);
- its checkpoints: `<checkpoint_dir>-<label>/NN-<name>/` (`checkpoints-<label>/` by default), DVC-tracked,
  one git commit per concept, exactly like `checkpoints/`; the datasets are the chain's own `data/concepts/`;
- its registry versions: new versions of the same registered model, tagged `lfsd.chain=<label>`.

A side chain is read and written through `side_chain(ws, label)`: a `Workspace` whose checkpoint folder and
base are the side chain's, so every step that takes a workspace (train, evaluate, version, register, recovery)
works on it unchanged. The checkpoints sit one folder below the root, as `checkpoints/` does, so a ledger's
relative paths resolve the same way (`lifelong.ledger.workspace_of`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from components.workspace.layout import Workspace

BASES_DIR = "models/bases"
CHAIN_TAG = "lfsd.chain"  # on a side chain's registry versions and its migration run: the label
LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class BadLabel(ValueError):
    """A chain label that cannot name a folder and a tag."""


@dataclass(frozen=True)
class SideChain(Workspace):
    """The workspace seen through one side chain: its checkpoints and its base; everything else shared."""

    label: str = ""

    @property
    def base_dir(self) -> Path:
        return self.root / BASES_DIR / self.label

    @property
    def base_rel(self) -> str:
        return f"{BASES_DIR}/{self.label}"


def check_label(label: str) -> str:
    if not LABEL_RE.match(label):
        raise BadLabel(f"--name {label!r}: a chain label is 1-40 of a-z, 0-9 and '-', starting with a letter or digit")
    return label


def side_chain(ws: Workspace, label: str) -> SideChain:
    """`ws` with the checkpoint folder `<checkpoint_dir>-<label>` and the base `models/bases/<label>`."""
    check_label(label)
    pipeline = dataclasses.replace(ws.params.pipeline, checkpoint_dir=f"{ws.params.pipeline.checkpoint_dir}-{label}")
    return SideChain(ws.root, dataclasses.replace(ws.params, pipeline=pipeline), label)


def committed_labels(ws: Workspace) -> list[str]:
    """The side chains whose base git has committed (`models/bases/<label>.dvc` at HEAD)."""
    from components.versioning.git import committed_names

    return sorted(n.removesuffix(".dvc") for n in committed_names(ws.root, BASES_DIR) if n.endswith(".dvc"))
