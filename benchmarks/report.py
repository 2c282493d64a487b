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


def bars(report: dict) -> list[tuple[str, str, bool | None]]:
    """The method issue's bars, computed from one benchmark JSON: (claim, figures, holds). `None` where the
    JSON lacks the methods a claim compares."""
    rows = report["methods"]
    out: list[tuple[str, str, bool | None]] = []

    def stat(method: str, key: str) -> tuple[float, float]:
        return rows[method][key]["mean"], rows[method][key]["std"]

    if "lfs" in rows and "finetune" in rows:
        for key, sign in (("avg_forgetting", -1), ("rcf_preservation", 1)):
            (lm, ls), (fm, fs) = stat("lfs", key), stat("finetune", key)
            margin = sign * (lm - fm)
            out.append((f"lfs beats finetune on {key} by > 2x the larger seed std",
                        f"{margin:.3f} vs 2 x {max(ls, fs):.3f} = {2 * max(ls, fs):.3f}", margin > 2 * max(ls, fs)))
        (lm, _), (fm, _) = stat("lfs", "new_concept_fidelity"), stat("finetune", "new_concept_fidelity")
        out.append(("lfs new-concept fidelity >= 90% of finetune's", f"{lm:.3f} vs {fm:.3f} ({lm / fm:.0%})",
                    lm >= 0.9 * fm))
        ratio = rows["lfs"].get("step_time_ratio_vs_finetune")
        out.append(("step time ratio <= 1.6", f"x{ratio:.2f}" if ratio else "-", ratio <= 1.6 if ratio else None))
    if "lfs" in rows and "prior-preservation" in rows:
        (lm, _), (pm, _) = stat("lfs", "avg_forgetting"), stat("prior-preservation", "avg_forgetting")
        out.append(("lfs avg forgetting <= prior-preservation's", f"{lm:.3f} vs {pm:.3f}", lm <= pm))
    minutes = report["wall_seconds"] / 60
    out.append((f"{len(rows)} methods x {len(next(iter(rows.values()))['avg_forgetting']['per_seed'])} seeds "
                "under 90 min", f"{minutes:.1f} min", minutes < 90))
    return out


def main() -> None:
    for path in sys.argv[1:]:
        report = json.loads(Path(path).read_text())
        print(f"### {path}\n\n`{report['command']}`: {report['wall_seconds'] / 60:.1f} min on {report['machine']}\n")
        print(table(report))
        print()
        for key in ("avg_forgetting", "rcf_preservation", "new_concept_fidelity"):
            print(per_seed(report, key))
        print()
        print("| claim | measured | holds? |\n| --- | --- | --- |")
        for claim, figures, holds in bars(report):
            print(f"| {claim} | {figures} | {'-' if holds is None else ('yes' if holds else '**no**')} |")
        print()


if __name__ == "__main__":
    main()
