"""Markdown tables from the benchmark JSON files (what docs/results.md shows).

    python -m benchmarks.report docs/figures/forgetting.json [docs/figures/forgetting_ablations.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [("avg_forgetting", "avg forgetting (lower)"), ("rcf_preservation", "RCF preservation"),
           ("rcf_class_acc", "RCF class acc"), ("new_concept_fidelity", "new-concept fidelity"),
           ("final_fidelity", "final fidelity"), ("bwt", "BWT"), ("text_alignment", "text alignment")]


def table(report: dict) -> str:
    head = "| method | " + " | ".join(c for _, c in COLUMNS) + " | train s / task | step time vs finetune |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 3)]
    for method, row in report["methods"].items():
        cells = [f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}" for k, _ in COLUMNS]
        ratio = row.get("step_time_ratio_vs_finetune")
        lines.append(f"| `{method}` | " + " | ".join(cells) + f" | {row['train_s_per_task']:.1f} | "
                     + (f"x{ratio:.2f}" if ratio else "-") + " |")
    return "\n".join(lines)


def per_seed(report: dict, key: str) -> str:
    return "\n".join(f"- `{m}` {key}: " + ", ".join(f"{v:.3f}" for v in row[key]["per_seed"])
                     for m, row in report["methods"].items())


def main() -> None:
    for path in sys.argv[1:]:
        report = json.loads(Path(path).read_text())
        print(f"### {path}\n\n`{report['command']}`: {report['wall_seconds'] / 60:.1f} min on {report['machine']}\n")
        print(table(report))
        print()
        for key in ("avg_forgetting", "rcf_preservation", "new_concept_fidelity"):
            print(per_seed(report, key))
        print()


if __name__ == "__main__":
    main()
