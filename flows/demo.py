"""`make demo`: the main job on the embedded default. Onboards `examples/concepts` in order through
`lifelong_sequence` (validation, DVC, Ray Train, forgetting evaluation, MLflow, gate) into this
workspace, then says where to look. A second run finds every concept already onboarded: a no-op."""

from __future__ import annotations

import json
import sys
import time

from components.config import REPO_ROOT


def main() -> int:
    from components.onboarding.scoring import FORGETTING_FILE
    from components.registry import PRODUCTION, get_alias_version
    from components.workspace.layout import load_workspace
    from components.workspace.mlflow_store import open_tracking
    from flows.sequence import lifelong_sequence

    start = time.time()
    ws = load_workspace()
    concepts = sorted(p for p in (REPO_ROOT / "examples" / "concepts").iterdir() if (p / "concept.yaml").is_file())
    print(f"lfsd demo: onboarding {len(concepts)} concepts with method {ws.params.training.method!r} into {ws.root}")
    results = lifelong_sequence([str(p) for p in concepts], workspace=str(ws.root), run_name="demo")
    open_tracking(ws)
    name = ws.params.pipeline.model_name
    print("\n== lfsd demo: done in %.0f s ==" % (time.time() - start))
    for r in results:
        print(
            f"  {r.concept:10s} {r.status:17s} {r.checkpoint:24s} version {r.version or '-':>3s}  gate {r.gate or '-'}"
        )
    latest = ws.latest_checkpoint()
    if latest is not None:
        metrics = json.loads((latest / FORGETTING_FILE).read_text())["metrics"]
        keys = ("final_fidelity", "avg_forgetting", "bwt", "rcf_preservation", "new_concept_fidelity", "text_alignment")
        print("  sequence metrics: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in keys))
        print(f"  figures: {ws.state_dir / 'figures' / latest.name}")
    print(f"  production: {name} version {get_alias_version(name, PRODUCTION)}  (models:/{name}@{PRODUCTION})")
    print("  compare runs:  .venv/bin/lfsd ui        (MLflow UI on http://127.0.0.1:5000)")
    import yaml

    first = yaml.safe_load((concepts[0] / "concept.yaml").read_text())
    print(
        f'  draw:          .venv/bin/lfsd generate "a <{first["name"]}> {first["class_word"]} on a white background" '
        f"--model models:/{name}@{PRODUCTION} --concept {first['name']} --out grid.png"
    )
    print("  roll back:     .venv/bin/lfsd rollback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
