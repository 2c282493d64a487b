"""Architecture rules the project promises: components never import Prefect; flows stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_components_never_import_prefect():
    offenders = [p.relative_to(REPO).as_posix() for p in (REPO / "components").rglob("*.py") if "prefect" in _imports(p)]
    assert offenders == []


def test_flows_call_components_and_do_no_model_work_themselves():
    heavy = {"torch", "diffusers", "transformers", "peft", "ray", "dvc", "great_expectations"}
    offenders = {p.name: sorted(_imports(p) & heavy) for p in (REPO / "flows").glob("*.py") if _imports(p) & heavy}
    assert offenders == {}
