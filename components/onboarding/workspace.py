"""The workspace a pipeline writes into: a git + DVC repository holding `data/concepts/`,
`checkpoints/`, the base and evaluator models and `params.yaml`.

The default is this repository. $LFSD_WORKSPACE (or `--workspace`) points elsewhere, e.g. a
deployment checkout or a test's temporary repository. The lifelong chain is the ordered list of
checkpoint folders `checkpoints/NN-<name>/`; the newest one's ledger lists every concept learned.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from components.config import PARAMS_FILE, REPO_ROOT, Params, load_params
from components.training.lifelong import LEDGER_FILE, Ledger

WORKSPACE_ENV = "LFSD_WORKSPACE"
CHECKPOINT_RE = re.compile(r"^(\d{2,})-([a-z0-9-]+)$")


@dataclass(frozen=True)
class Workspace:
    root: Path
    params: Params

    @property
    def data_dir(self) -> Path:
        return self.root / self.params.pipeline.data_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / self.params.pipeline.checkpoint_dir

    @property
    def base_dir(self) -> Path:
        return self.root / "models" / "base"

    @property
    def evaluator_dir(self) -> Path:
        return self.root / "models" / "evaluator"

    @property
    def state_dir(self) -> Path:
        from components.versioning import state_dir

        return state_dir(self.root).resolve()

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders of the chain, in task order (only those holding a ledger)."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [p for p in self.checkpoint_dir.iterdir() if CHECKPOINT_RE.match(p.name) and (p / LEDGER_FILE).is_file()]
        return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))

    def latest_checkpoint(self) -> Path | None:
        chain = self.checkpoints()
        return chain[-1] if chain else None

    def ledger(self) -> Ledger | None:
        latest = self.latest_checkpoint()
        return Ledger.read(latest / LEDGER_FILE) if latest else None

    def learned_names(self) -> list[str]:
        ledger = self.ledger()
        return ledger.names() if ledger else []

    def next_checkpoint(self, name: str) -> Path:
        return self.checkpoint_dir / f"{len(self.checkpoints()) + 1:02d}-{name}"


def load_workspace(root: Path | str | None = None) -> Workspace:
    """The workspace at `root`, $LFSD_WORKSPACE, or this repository; its own params.yaml if it has one."""
    root = Path(root or os.environ.get(WORKSPACE_ENV) or REPO_ROOT).resolve()
    if not (root / ".git").exists():
        raise FileNotFoundError(f"{root}: not a git repository (the pipeline commits every onboarded concept)")
    params_file = root / "params.yaml"
    return Workspace(root, load_params(params_file if params_file.is_file() else PARAMS_FILE))


def init_workspace(root: Path, *, models_from: Path = REPO_ROOT, params_overrides: dict | None = None,
                   base_dir: Path | None = None) -> Path:
    """A new, empty workspace: a git repository with the base and evaluator of `models_from`, its
    params.yaml (with `params_overrides` per section), DVC initialised with the local default remote,
    one initial commit. For a separate deployment checkout, benchmarks and tests (`base_dir`: another base)."""
    import shutil
    import subprocess

    import yaml

    from components.versioning import ensure_dvc_repo

    root = Path(root)
    root.mkdir(parents=True)
    shutil.copytree(base_dir or Path(models_from) / "models" / "base", root / "models" / "base")
    shutil.copytree(Path(models_from) / "models" / "evaluator", root / "models" / "evaluator")
    params = yaml.safe_load((Path(models_from) / "params.yaml").read_text())
    for section, values in (params_overrides or {}).items():
        params[section] = {**params.get(section, {}), **values}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text(".lfsd/\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "lfsd@localhost")
    git("config", "user.name", "lfsd")
    ensure_dvc_repo(root)
    git("add", "-A")
    git("commit", "-q", "-m", "lfsd workspace")
    return root
