"""The workspace a pipeline writes into: a git + DVC repository holding `data/concepts/`,
`checkpoints/`, the base and evaluator models and `params.yaml` (only the values that differ from
lfsd's own), made by `lfsd init`.

Like git, lfsd finds the workspace it stands in: `--workspace`, else $LFSD_WORKSPACE, else the
nearest folder upward from the current directory that holds `.git` and `params.yaml`.

The lifelong chain is what git has COMMITTED: the `checkpoints/NN-<name>.dvc` files at HEAD, in task
order; the newest one's ledger lists every concept learned. A checkpoint folder in the working tree
that HEAD does not know is an unfinished attempt (`recovery.py`), never a learned concept.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from components.config import REPO_ROOT, Params, load_params, with_overrides
from components.lifelong.ledger import LEDGER_FILE, Ledger
from components.state import WORKSPACE_ENV, find_workspace, state_dir


class WorkspaceNotFound(FileNotFoundError):
    """Not inside a workspace, and none was named."""


CHECKPOINT_RE = re.compile(r"^(\d{2,})-([a-z0-9-]+)$")
RECORDS_DIR = "erasures"  # one committed record per erasure request (components/erasure/record.py)
METRICS_DIR = "metrics"  # what `dvc metrics show` / `dvc plots show` read (components/publishing/dvc_metrics.py)
METRICS_FILE = f"{METRICS_DIR}/forgetting.json"
HISTORY_FILE = f"{METRICS_DIR}/history.json"
HISTORY_Y = ("mean_fidelity", "avg_forgetting", "new_concept_fidelity", "rcf_similarity")
DVC_YAML_SECTIONS = {  # the workspace's dvc.yaml, written by `init_workspace`
    "metrics": [METRICS_FILE],
    "plots": [{HISTORY_FILE: {"x": "task", "y": list(HISTORY_Y)}}],
}


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
        return state_dir(self.root).resolve()

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders of the committed chain, in task order (HEAD's `checkpoints/NN-name.dvc`)."""
        from components.versioning.git import committed_names

        stems = [
            n.removesuffix(".dvc")
            for n in committed_names(self.root, self.params.pipeline.checkpoint_dir)
            if n.endswith(".dvc")
        ]
        found = [self.checkpoint_dir / s for s in stems if CHECKPOINT_RE.match(s)]
        return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))

    def latest_checkpoint(self) -> Path | None:
        chain = self.checkpoints()
        return chain[-1] if chain else None

    def ledger(self) -> Ledger | None:
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        if not (latest / LEDGER_FILE).is_file():
            raise FileNotFoundError(
                f"{latest}: committed but not in the working tree; `dvc pull` it "
                f"(any lfsd command that writes restores it first)"
            )
        return Ledger.read(latest / LEDGER_FILE)

    def learned_names(self) -> list[str]:
        ledger = self.ledger()
        return ledger.names() if ledger else []

    def next_checkpoint(self, name: str) -> Path:
        """`checkpoints/NN-name` with NN one past the highest committed (a concept's removal takes its
        checkpoint out of the chain; its number is not reused)."""
        numbers = [int(CHECKPOINT_RE.match(p.name).group(1)) for p in self.checkpoints()]
        return self.checkpoint_dir / f"{max(numbers, default=0) + 1:02d}-{name}"


def workspace_root(root: Path | str | None = None) -> Path:
    """`root`, else $LFSD_WORKSPACE, else the workspace the current directory is in."""
    found = root or os.environ.get(WORKSPACE_ENV) or find_workspace()
    if found is None:
        raise WorkspaceNotFound(
            f"{Path.cwd()}: not inside an lfsd workspace (a git repository with params.yaml); "
            f"create one with `lfsd init DIR`, or name one with --workspace / ${WORKSPACE_ENV}"
        )
    return Path(found).resolve()


RUNTIME_SECTIONS = ("runtime",)  # what a command's `--set` may change: where it runs, never what it learns


def load_workspace(root: Path | str | None = None, overrides: tuple[str, ...] | list[str] = ()) -> Workspace:
    """The workspace at `root` (see `workspace_root`), with its params.yaml laid over lfsd's and a
    command's `--set runtime.KEY=VALUE` items over that (device, precision, threads: RUNTIME_SECTIONS)."""
    root = workspace_root(root)
    if not (root / ".git").exists():
        raise WorkspaceNotFound(
            f"{root}: not a git repository (the pipeline commits every onboarded concept); "
            f"create a workspace with `lfsd init DIR`"
        )
    params_file = root / "params.yaml"
    params = load_params(params_file if params_file.is_file() else None)
    return Workspace(root, with_overrides(params, overrides, RUNTIME_SECTIONS) if overrides else params)


def init_workspace(
    root: Path, *, models_from: Path = REPO_ROOT, params_overrides: dict | None = None, base_dir: Path | None = None
) -> Path:
    """A new, empty workspace: a git repository with the base and evaluator of `models_from`, its
    params.yaml (with `params_overrides` per section), DVC initialised with the local default remote,
    one initial commit. For a separate deployment checkout, benchmarks and tests (`base_dir`: another base).

    A Stable Diffusion folder as `base_dir` is checked first (BaseFolderError naming the bad file; nothing
    is created), versioned with DVC rather than git (gigabytes), and gets the `sd_base` training values
    (KD captions that base knows) in the workspace's params.yaml unless `params_overrides` sets them."""
    import shutil

    import yaml

    from components.model.base_folder import check_base_folder
    from components.versioning import ensure_dvc_repo, push_path
    from components.versioning.git import commit_all, init_repo

    root = Path(root)
    sd_base = base_dir is not None and is_sd_folder(Path(base_dir))
    if base_dir is not None:
        check_base_folder(Path(base_dir))
    overrides = {k: dict(v) for k, v in (params_overrides or {}).items()}
    if sd_base:
        sd = load_params().sd_base
        training = overrides.setdefault("training", {})
        training.setdefault("kd_templates", list(sd.kd_templates))
        training.setdefault("class_candidates", list(sd.class_candidates))
    root.mkdir(parents=True)
    shutil.copytree(base_dir or Path(models_from) / "models" / "base", root / "models" / "base")
    shutil.copytree(Path(models_from) / "models" / "evaluator", root / "models" / "evaluator")
    header = "# This workspace's values where they differ from lfsd's params.yaml (which holds every default).\n"
    (root / "params.yaml").write_text(header + yaml.safe_dump(overrides, sort_keys=False))
    inbox = overrides.get("pipeline", {}).get("inbox", load_params().pipeline.inbox)
    (root / ".gitignore").write_text(f".lfsd/\n/{inbox}/\n")  # raw submissions never reach git
    (root / "dvc.yaml").write_text(
        "# What `dvc metrics show` and `dvc plots show` read (written by each onboarding).\n"
        + yaml.safe_dump(DVC_YAML_SECTIONS, sort_keys=False)
    )
    init_repo(root)
    ensure_dvc_repo(root)
    if sd_base:
        push_path(root, "models/base")
    commit_all(root, "lfsd workspace")
    return root


def is_sd_folder(base_dir: Path) -> bool:
    """A diffusers Stable Diffusion folder (model_index.json), not an lfsd bundle (lfsd_index.json)."""
    return (base_dir / "model_index.json").is_file() and not (base_dir / "lfsd_index.json").is_file()
