"""The repository's own pipeline stays reproducible (issue 36): dvc.lock records what every dvc.yaml
stage was made from, so `dvc status` on a clone says whether the committed models and tables are what
the code produces. A commit that changes a file or a params.yaml key a stage depends on must re-record
that stage: rerun it, or show its output unchanged and `dvc commit STAGE` (docs/results.md says which).
Offline and in seconds: DVC's own status (md5 of the deps, the params keys) against dvc.lock."""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _pipeline_status(root: Path) -> dict:
    """`dvc status dvc.yaml` as a dict: {stage: [what changed]}, empty when every stage matches dvc.lock."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status(targets=[str(root / "dvc.yaml")])
    return {name.rpartition(":")[2]: what for name, what in status.items()}  # "path/dvc.yaml:stage" off the root


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_dvc_lock_matches_every_stage():
    status = _pipeline_status(REPO)
    assert status == {}, (
        f"dvc.lock is stale for {sorted(status)}: {status}. A dep of these stages changed. Rerun the stage "
        "(`dvc repro STAGE`), or show its output unchanged (a short run of the old and new code, "
        "benchmarks/training_fingerprint.py) and `dvc commit STAGE`; record which in docs/results.md."
    )


def _module_file(name: str) -> Path | None:
    """The repository file that importing `name` executes last (module or package __init__), if any."""
    base = REPO / Path(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


@functools.cache
def _executes_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


@functools.cache
def _load_time_imports(path: Path) -> frozenset[Path]:
    """Repository files that importing `path` runs: its module-level imports and their packages'
    __init__ files (imports inside functions run only on their branch: the trace put those in)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    files = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            f = _module_file(".".join(parts[:i]))
            if f is not None and f.resolve() != path.resolve() and _executes_code(f):
                files.add(f)
    return frozenset(files)


def test_stage_deps_hold_what_their_code_imports():
    """Each Python dep's load-time imports are deps too: a module newly imported by a stage's code
    cannot change its output unseen."""
    missing = {}
    for name, stage in _stages().items():
        deps = {REPO / d for d in stage.get("deps", [])}
        for dep in sorted(d for d in deps if d.suffix == ".py"):
            for f in _load_time_imports(dep) - deps:
                missing.setdefault(name, set()).add(f"{dep.relative_to(REPO)} -> {f.relative_to(REPO)}")
    assert not missing, (
        f"modules imported by a stage's deps but not in its deps: {missing}. Add them to the stage's deps in "
        "dvc.yaml; then `dvc status`: a frozen stage needs nothing more, any other is re-recorded as above."
    )


def test_the_guard_sees_a_changed_dep_and_a_changed_param(tmp_path):
    """A copy of the pretrain_evaluator stage: clean as committed; an edited dep file or a params key
    the stage reads makes it stale; a key it does not read does not."""
    from dvc.repo import Repo

    stage = _stages()["pretrain_evaluator"]
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    for rel in [*stage["deps"], "params.yaml", *(next(iter(o)) for o in stage["outs"])]:
        src, dst = REPO / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"pretrain_evaluator": stage}}))
    lock["stages"] = {"pretrain_evaluator": lock["stages"]["pretrain_evaluator"]}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    Repo.init(str(tmp_path), no_scm=True).close()
    assert _pipeline_status(tmp_path) == {}

    params = tmp_path / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["world"]["image_size"] += 1  # not read by this stage
    params.write_text(yaml.safe_dump(raw))
    assert _pipeline_status(tmp_path) == {}
    raw["pretrain_evaluator"]["steps"] += 1
    params.write_text(yaml.safe_dump(raw))
    assert "pretrain_evaluator" in _pipeline_status(tmp_path)

    raw["pretrain_evaluator"]["steps"] -= 1
    params.write_text(yaml.safe_dump(raw))
    dep = tmp_path / "components/evaluation/embedder.py"
    dep.write_text(dep.read_text() + "\n# a comment is a change to DVC too\n")
    status = _pipeline_status(tmp_path)
    assert "components/evaluation/embedder.py" in str(status["pretrain_evaluator"])
