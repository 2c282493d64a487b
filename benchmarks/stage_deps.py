"""What one `python -m MODULE ARGS` run really executes and reads: the repository's Python files it
imported and the params.yaml keys it read, so a dvc.yaml stage can depend on exactly those (issue 36).

    python -m benchmarks.stage_deps OUT.json components.pretraining.vae --out /tmp/vae      (one command line)

Runs the module in this process (as `python -m` would) and writes OUT.json: `modules` (repository files in
sys.modules at the end, package __init__ files that hold only a docstring left out: they execute
nothing) and `params` (`section.key` of every field read from the loaded Params outside loading and
`--set` validation; a `dataclasses.replace` or `asdict` reads every field of its section). A branch
the run does not take is not seen: run it with the stage's own options. Subprocesses and Ray workers
are not traced. The command runs for real: use a scratch clone with a cut-down params.yaml and
outputs under /tmp (docs/log/dvc-pipeline-2026-12-07.md).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import runpy
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def executes_code(path: Path) -> bool:
    """False for a file whose only statement is its docstring."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def repo_modules(entry: str) -> list[str]:
    """Repository files among the loaded modules, and the file run as __main__ (gone from sys.modules)."""
    out = set()
    files = [getattr(mod, "__file__", None) for mod in list(sys.modules.values())]
    for f in [*files, importlib.util.find_spec(entry).origin]:
        if not f or not Path(f).is_absolute():
            continue
        p = Path(f).resolve()
        if p.is_relative_to(ROOT) and ".venv" not in p.parts and p.suffix == ".py" and p.is_file() and executes_code(p):
            out.add(str(p.relative_to(ROOT)))
    return sorted(out - {"benchmarks/stage_deps.py"})


def record_params_reads() -> set[str]:
    """Patch the config dataclasses so reads of their fields are recorded as `section.key`."""
    from components import config

    reads: set[str] = set()
    quiet = [0]
    hints = typing.get_type_hints(config.Params)
    section_of = {cls: name for name, cls in hints.items()}
    derived = {f"{s}.{k}": f"{ss}.{sk}" for (s, k), (ss, sk) in config.DERIVED.items()}

    def getattribute(self, name, _get=object.__getattribute__):
        section = section_of.get(type(self))
        if section and not quiet[0] and name in {f.name for f in dataclasses.fields(type(self))}:
            key = f"{section}.{name}"
            reads.add(derived.get(key, key))
        return _get(self, name)

    for cls in section_of:
        cls.__getattribute__ = getattribute

    def silenced(fn):
        def wrapper(*a, **kw):
            quiet[0] += 1
            try:
                return fn(*a, **kw)
            finally:
                quiet[0] -= 1

        return wrapper

    for name in ("load_params", "with_overrides", "replace_field"):
        setattr(config, name, silenced(getattr(config, name)))
    return reads


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    out, argv = Path(argv[0]), argv[1:]
    reads = record_params_reads()
    sys.argv = list(argv)
    code = 0
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out.write_text(json.dumps({"exit": code, "modules": repo_modules(argv[0]), "params": sorted(reads)}, indent=1))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
