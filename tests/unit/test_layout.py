"""Architecture rules the project promises: components never import Prefect; flows stay thin; imports
run down the layers only; the lifelong format depends on nothing but the model; each room says what it
holds and no two modules share a name; modules and functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Rooms of components/, lowest first: a module may import its own room and rooms of a lower or equal rank.
RANK = {
    "config": 0,
    "state": 0,
    "checksums": 0,  # file hashes and the one error for corrupt bytes
    "visuals": 0,
    "progress": 0,
    "stepping": 0,
    "device": 0,
    "redaction": 0,  # credentials out of every URI lfsd shows
    "world": 1,
    "model": 1,
    "lifelong": 2,
    "validation": 2,
    "versioning": 2,
    "evaluation": 3,
    "pretraining": 4,
    "training": 4,  # training: the method
    "registry": 5,
    "ray_train": 5,  # ray_train: Ray plumbing that launches the method's loop
    "workspace": 6,  # layout, writer lock, recovery, the workspace's MLflow store
    "publishing": 7,  # MLflow runs and registration, the gate, DVC metrics, reports
    "serving": 7,  # `lfsd serve`: the production version over HTTP (Ray Serve), following the alias
    "onboarding": 8,  # the onboarding steps
    "erasure": 9,  # the removal's steps (relearning uses onboarding's)
    "chains": 10,  # the commands that write: lock + catch-up + the order of the steps
    "cli": 11,
    "showcase": 11,
}
SAME_NAME_ON_PURPOSE = {  # module names in two packages of components/, and why
    "__init__.py": "a package's face",
    "__main__.py": "`python -m` entry of its package",
}
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 300  # as `ruff format` lays code out (~250 in the denser hand layout before it)
LARGE_ON_PURPOSE = {  # modules over MAX_MODULE_LINES, and why
    "components/config.py": "every params.yaml section's type in one file, next to the one loader",
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "components" and len(parts) > 1 else None


def _component_files():
    return sorted((REPO / "components").rglob("*.py"))


def test_components_never_import_prefect():
    offenders = [
        p.relative_to(REPO).as_posix()
        for p in _component_files()
        if any(m.split(".")[0] == "prefect" for m in _imports(p))
    ]
    assert offenders == []


def test_flows_call_components_and_do_no_model_work_themselves():
    heavy = {"torch", "diffusers", "transformers", "peft", "ray", "dvc", "great_expectations"}
    offenders = {p.name: sorted({m.split(".")[0] for m in _imports(p)} & heavy) for p in (REPO / "flows").glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_flows_do_not_spell_out_the_onboarding_chain():
    """The order of the steps lives in components/chains/onboard.py only."""
    for path in (REPO / "flows").glob("*.py"):
        assert "components.onboarding.steps" not in _imports(path), path.name


def test_every_room_is_ranked_and_no_import_runs_back_up_the_layers():
    upward = []
    for path in _component_files():
        rel = path.relative_to(REPO / "components")
        own = rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else None
        if own is None:
            continue
        assert own in RANK, f"room {own!r} has no rank in this test"
        for module in _imports(path):
            room = _room(module)
            if room and room != own and RANK[room] > RANK[own]:
                upward.append(f"{rel.as_posix()} imports {module}")
    assert upward == []


def test_the_lifelong_format_imports_only_the_model_and_the_config():
    for path in (REPO / "components" / "lifelong").glob("*.py"):
        rooms = {_room(m) for m in _imports(path)} - {None, "lifelong"}
        assert rooms <= {"model", "config", "checksums"}, (path.name, rooms)  # checksums: its files' hashes


def test_no_module_is_large_without_a_reason():
    sizes = {
        p.relative_to(REPO).as_posix(): len(p.read_text().splitlines())
        for d in ("components", "flows", "benchmarks")
        for p in (REPO / d).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES and p not in LARGE_ON_PURPOSE} == {}


def test_no_two_modules_share_a_name_across_packages():
    """A name says one thing: `evaluation/` vs `onboarding/evaluation.py` made readers open the wrong file."""
    seen: dict[str, list[str]] = {}
    for path in _component_files():
        seen.setdefault(path.name, []).append(path.relative_to(REPO).as_posix())
    assert {n: ps for n, ps in seen.items() if len(ps) > 1 and n not in SAME_NAME_ON_PURPOSE} == {}


def test_every_package_names_what_it_holds():
    """Each package's __init__ docstring names every module in it (a reader starts there)."""
    unnamed = []
    for init in (REPO / "components").rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        for mod in init.parent.glob("*.py"):
            if not mod.name.startswith("__") and mod.stem not in doc:
                unnamed.append(mod.relative_to(REPO).as_posix())
        if not doc:
            unnamed.append(init.relative_to(REPO).as_posix() + " (no docstring)")
    assert unnamed == []


def test_no_function_is_longer_than_a_reader_can_hold():
    long = []
    for d in ("components", "flows"):
        for path in (REPO / d).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO).as_posix()}:{node.name} ({n} lines)")
    assert long == []


def test_benchmarks_stand_above_the_cli_that_runs_them():
    """`lfsd benchmark` imports benchmarks/: a benchmark importing the CLI back would be a loop of rooms."""
    offenders = [p.name for p in (REPO / "benchmarks").glob("*.py") if any(_room(m) == "cli" for m in _imports(p))]
    assert offenders == []
