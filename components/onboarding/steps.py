"""The onboarding steps in order, each a plain function the Prefect tasks wrap one to one, plus
`onboard_in_process`: the same chain with no Prefect and no Ray (tests, overhead benchmark).

State rule: nothing is committed until step 5, which commits the dataset's and the checkpoint's .dvc
files in ONE git commit (one commit per onboarded concept). A failure before that removes what the
attempt wrote (`discard_attempt`), so a failed onboarding leaves git, DVC, the ledger and
checkpoints as they were; objects already pushed to the content-addressed DVC remote are harmless.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.onboarding.dataset import ConceptSubmission, already_onboarded, stage_dataset, submission_of
from components.onboarding.evaluation import StepEvaluation, evaluate_checkpoint
from components.onboarding.gate import GateDecision, decide
from components.onboarding.register import apply_gate, log_and_register
from components.onboarding.workspace import Workspace

Log = Callable[[str], None]


class AlreadyOnboarded(Exception):
    """The same folder (same name, class word and image hashes) was onboarded before: a no-op."""


@dataclass
class OnboardResult:
    concept: str
    status: str  # "onboarded" | "already-onboarded"
    checkpoint: str = ""
    dataset: str = ""
    version: str = ""
    run_id: str = ""
    gate: str = ""
    production: str | None = None
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # per step wall time


def check_submission(ws: Workspace, folder: Path) -> ConceptSubmission:
    """Step 1. Raises ValidationError (every problem, file + reason) or AlreadyOnboarded."""
    from components.validation import require_valid

    folder = Path(folder)
    same = already_onboarded(ws, folder)
    if same is not None:
        raise AlreadyOnboarded(f"{folder}: already onboarded as {same} (same name, class word and images); nothing to do")
    p = ws.params.pipeline
    report = require_valid(folder, min_shots=p.min_shots, max_shots=p.max_shots, learned_names=ws.learned_names())
    return submission_of(report)


def version_dataset(ws: Workspace, sub: ConceptSubmission) -> tuple[Path, str]:
    """Step 2. Normalised copy in data/concepts/<name>/, dvc add + push (committed in step 5)."""
    from components.versioning import ensure_dvc_repo, push_path

    ensure_dvc_repo(ws.root)
    folder = stage_dataset(ws, sub)
    return folder, push_path(ws.root, ws.rel(folder))


def train_in_process(ws: Workspace, dataset: Path, out: Path, report: Callable[[dict], None] | None = None):
    """Step 3 without Ray: theta_{k-1} (newest checkpoint or the base) + the concept -> theta_k in `out`."""
    import torch

    from components.training.concept import read_concept
    from components.training.lifelong import LifelongModel
    from components.training.methods import get_method
    from components.training.trainer import train_task

    torch.set_num_threads(max(1, ws.params.ray.cpus_per_worker))
    cfg = ws.params.training
    previous = ws.latest_checkpoint()
    model = (LifelongModel.from_checkpoint(previous, ws.base_dir) if previous
             else LifelongModel.from_base(ws.base_dir, cfg.method))
    concept = read_concept(dataset)
    return train_task(model, concept, get_method(cfg.method), cfg, out, references=str(dataset.resolve()), report=report)


def evaluate(ws: Workspace, checkpoint: Path, previous: Path | None) -> StepEvaluation:
    """Step 4. The forgetting protocol over every concept so far and the relevant classes."""
    return evaluate_checkpoint(ws, checkpoint, previous, ws.state_dir / "figures" / checkpoint.name)


def version_checkpoint(ws: Workspace, dataset: Path, checkpoint: Path, message: str):
    """Step 5. Ledger paths made workspace-relative; dataset + checkpoint dvc add/push; one git commit."""
    from components.training.lifelong import relativize_ledger
    from components.versioning import version_paths

    relativize_ledger(checkpoint, ws.root)
    data_rec, ckpt_rec = version_paths(ws.root, [ws.rel(dataset), ws.rel(checkpoint)], message)
    return data_rec, ckpt_rec


def lineage_tags(ws: Workspace, data_rec, ckpt_rec) -> dict[str, str]:
    from components.training.lifelong import LEDGER_FILE, Ledger

    ledger = Ledger.read(ws.root / ckpt_rec.path / LEDGER_FILE)
    return {
        "lfsd.dataset_dvc_md5": data_rec.md5, "lfsd.dataset_path": data_rec.path,
        "lfsd.checkpoint_dvc_md5": ckpt_rec.md5, "lfsd.checkpoint_path": ckpt_rec.path,
        "lfsd.git_commit": ckpt_rec.commit, "lfsd.base_hash": ledger.base_hash, "lfsd.method": ledger.method,
        "lfsd.ledger": ",".join(ledger.names()),
    }


def gate(ws: Workspace, version: str, evaluation: StepEvaluation) -> tuple[GateDecision, str | None]:
    """Step 7. Decide on params.yaml's bounds; move `production` only on a pass."""
    decision = decide(evaluation.current, ws.params.gate)
    return decision, apply_gate(ws, version, decision)


def discard_attempt(ws: Workspace, sub: ConceptSubmission | None, checkpoint: Path | None) -> None:
    """Undo an onboarding that failed before its commit: the dataset copy, its .dvc file and
    .gitignore line go back to HEAD's state, and the half-written checkpoint is removed."""
    paths = []
    if sub is not None:
        paths.append(ws.data_dir / sub.name)
    if checkpoint is not None:
        paths.append(checkpoint)
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
        for f in (p.with_name(p.name + ".dvc"), p.parent / ".gitignore"):
            rel = ws.rel(f) if f.exists() or f.parent.exists() else None
            if rel is None:
                continue
            tracked = subprocess.run(["git", "cat-file", "-e", f"HEAD:{rel}"], cwd=ws.root, capture_output=True).returncode == 0
            if tracked:
                subprocess.run(["git", "checkout", "HEAD", "--", rel], cwd=ws.root, capture_output=True, check=True)
            else:
                f.unlink(missing_ok=True)


def onboard_in_process(ws: Workspace, folder: Path, *, parent_run_id: str | None = None, log: Log = print) -> OnboardResult:
    """The whole chain with bare components (no Prefect, no Ray)."""
    times: dict[str, float] = {}

    def timed(name: str, fn, *args):
        t0 = time.time()
        out = fn(*args)
        times[name] = round(time.time() - t0, 2)
        return out

    try:
        sub = timed("validate", check_submission, ws, folder)
    except AlreadyOnboarded as e:
        log(str(e))
        return OnboardResult(Path(folder).name, "already-onboarded")
    previous, out = ws.latest_checkpoint(), ws.next_checkpoint(sub.name)
    try:
        dataset, _ = timed("version_dataset", version_dataset, ws, sub)
        losses: list[dict] = []
        result = timed("train", train_in_process, ws, dataset, out, losses.append)
        evaluation = timed("evaluate", evaluate, ws, out, previous)
        data_rec, ckpt_rec = timed("version_checkpoint", version_checkpoint, ws, dataset, out,
                                   f"onboard {out.name}: {sub.class_word} ({len(sub.source_sha256)} shots)")
    except BaseException:
        discard_attempt(ws, sub, out)
        raise
    run_id, version = timed("register", lambda: log_and_register(
        ws, checkpoint=out, concept=sub.name, class_word=sub.class_word, losses=losses,
        train_seconds=result.seconds, evaluation=evaluation, lineage=lineage_tags(ws, data_rec, ckpt_rec),
        parent_run_id=parent_run_id))
    decision, production = timed("gate", gate, ws, version, evaluation)
    log(f"{sub.name}: version {version}, gate {decision.summary()}, production -> {production}")
    return OnboardResult(sub.name, "onboarded", ws.rel(out), data_rec.path, version, run_id, decision.summary(),
                         production, evaluation.current | {"final_fidelity": evaluation.metrics["final_fidelity"]}, times)
