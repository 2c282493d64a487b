"""The onboarding steps, each a plain function of the workspace and what the step before produced.
The onboarding chain (`components/chains/onboard.py`) orders them; finishing a killed onboarding
(`finish.py`) and relearning after an erasure (`components/erasure/relearn.py`) call the ones they need.
The Prefect flow runs each one as a task through the same chain.

State rule: nothing is committed until `version_checkpoint`, which commits the dataset's and the checkpoint's
.dvc files in ONE git commit (one commit per onboarded concept). A failure before that is undone by
`discard_attempt` (`recovery.discard_uncommitted`), so git, DVC, the ledger and checkpoints stay as they were;
objects already pushed to the content-addressed DVC remote are harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from components.onboarding.dataset import ConceptSubmission, stage_dataset, submission_of
from components.onboarding.scoring import FORGETTING_FILE, StepEvaluation, evaluate_checkpoint
from components.publishing.concept_run import log_and_register
from components.publishing.gate import GateDecision, apply_gate, decide
from components.stepping import ctrl_c_kept
from components.workspace.faults import pause_here_if_asked
from components.workspace.layout import Workspace
from components.workspace.recovery import discard_uncommitted


def validate(ws: Workspace, folder: Path) -> ConceptSubmission:
    """Raises ValidationError naming every bad file and why, or BaseMismatch when the workspace's base is not
    the one its chain was trained on, or DeviceError when this machine cannot run runtime.device /
    runtime.precision; changes nothing."""
    from components.device import check_local_ray_gpus, placement
    from components.lifelong import verify_base
    from components.validation import require_valid

    placement(ws.params.runtime)  # before anything is versioned or trained
    check_local_ray_gpus(ws.params.ray)

    p = ws.params.pipeline
    report = require_valid(Path(folder), min_shots=p.min_shots, max_shots=p.max_shots, learned_names=ws.learned_names())
    ledger = ws.ledger()
    if ledger is not None:
        verify_base(ws.base_dir, ledger.base_hash)
    return submission_of(report)


def check_nearness(ws: Workspace, sub: ConceptSubmission):
    """The submission against the concepts the chain holds (`nearness_check.py`): ValidationError when it is
    one of them again (nothing changed), else what is near, for the terminal, the checkpoint and the gate."""
    from components.onboarding import nearness_check

    return nearness_check.check(ws, sub)


def nearness_warning(ws: Workspace, near) -> str | None:
    from components.onboarding import nearness_check

    return nearness_check.message(near, ws.params.nearness.warn_above, ws.params.nearness.show)


def keep_nearness(ws: Workspace, checkpoint: Path, near) -> None:
    """The new concept's shot embeddings and the check's report, into its (not yet committed) checkpoint."""
    from components.onboarding import nearness_check

    nearness_check.keep(checkpoint, near, ws.params.nearness.warn_above)


def version_dataset(ws: Workspace, sub: ConceptSubmission) -> tuple[Path, str]:
    """Normalised copy in data/concepts/<name>/, dvc add + push (committed with the checkpoint)."""
    from components.versioning import ensure_dvc_repo, push_path

    ensure_dvc_repo(ws.root)
    folder = stage_dataset(ws, sub)
    return folder, push_path(ws.root, ws.rel(folder))


def attempt_name(out: Path, previous: Path | None, dataset_md5: str, method: str) -> str:
    """The same concept on the same chain gets the same name, so a killed attempt's rerun resumes it."""
    key = hashlib.sha256(f"{previous.name if previous else ''}|{dataset_md5}|{method}".encode()).hexdigest()[:10]
    return f"{out.name}-{key}"


def train(
    ws: Workspace,
    dataset: Path,
    out: Path,
    previous: Path | None,
    launcher,
    report: Callable[[dict], None],
    run_name: str | None = None,
):
    """theta_{k-1} (`previous`, or the base) + the concept -> theta_k in `out`, by `launcher`."""
    from components.device import placement
    from components.training.launch import TrainRequest

    where = placement(ws.params.runtime)  # refused here, before anything trains, if the machine cannot
    req = TrainRequest(
        base_dir=ws.base_dir,
        previous_checkpoint=previous,
        concept_dir=dataset,
        references=str(dataset.resolve()),
        out=out,
        method=ws.params.training.method,
        cfg=ws.params.training,
        run_name=run_name,
        device=str(where.device),
        precision=where.precision,
    )
    with ctrl_c_kept():  # Ray Train's fit takes SIGINT over; after it, Ctrl-C must abort again
        return launcher(req, report)


def drop_training_state(ws: Workspace, run_name: str) -> None:
    """After the commit: the attempt's resumable training state is no longer needed."""
    from components.ray_train.runtime import drop_run

    drop_run(ws.params.ray, ws.state_dir, run_name)


def evaluate_forgetting(ws: Workspace, checkpoint: Path, previous: Path | None, record: bool = True) -> StepEvaluation:
    """The forgetting protocol over every concept so far and the relevant classes; with `record` the
    history is written into the (not yet committed) checkpoint."""
    pause_here_if_asked("during-evaluate")
    figures = ws.state_dir / "figures" / checkpoint.name
    return evaluate_checkpoint(ws, checkpoint, previous, figures, record=record, show_progress=True)  # a TTY only


def version_checkpoint(ws: Workspace, dataset: Path, checkpoint: Path, message: str):
    """Ledger paths made workspace-relative; dataset + checkpoint dvc add/push; one git commit, which
    also holds the metrics files DVC shows (`dvc_metrics`)."""
    from components.lifelong import relativize_ledger
    from components.publishing.dvc_metrics import metrics_files
    from components.versioning import version_paths

    relativize_ledger(checkpoint, ws.root)
    history = json.loads((checkpoint / FORGETTING_FILE).read_text())
    data_rec, ckpt_rec = version_paths(
        ws.root, [ws.rel(dataset), ws.rel(checkpoint)], message, git_files=metrics_files(history)
    )
    return data_rec, ckpt_rec


def register(ws: Workspace, **kwargs) -> tuple[str, str]:
    """MLflow run + model version with lineage tags, alias `candidate`. Returns (run_id, version)."""
    return log_and_register(ws, **kwargs)


def gate(ws: Workspace, version: str, evaluation: StepEvaluation) -> tuple[GateDecision, str | None]:
    """Decide on params.yaml's bounds; move `production` only on a pass, and never off a migrated chain a
    person promoted (then the version says so: `lfsd.not_promoted`)."""
    from components.publishing.gate import other_chain_in_production
    from components.workspace.mlflow_store import client

    decision = decide(evaluation.current, ws.params.gate)
    held = other_chain_in_production(client(ws), ws.params.pipeline.model_name, version)
    return decision, apply_gate(ws, version, decision, held=held)


def discard_attempt(ws: Workspace, sub: ConceptSubmission | None, checkpoint: Path | None) -> None:
    """Undo an onboarding that failed before its commit: its dataset copy and half-written checkpoint."""
    discard_uncommitted(ws, [ws.data_dir / sub.name if sub is not None else None, checkpoint])


def training_record(checkpoint: Path) -> dict:
    """How the task was trained, as the loop wrote it into the checkpoint (method, seconds, final losses)."""
    from components.lifelong.checkpoint import TRAINING_FILE

    return json.loads((Path(checkpoint) / TRAINING_FILE).read_text())
