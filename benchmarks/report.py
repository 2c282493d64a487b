"""Markdown tables from the benchmark JSON files (what docs/results.md shows).

python -m benchmarks.report docs/figures/forgetting.json [docs/figures/forgetting_ablations.json ...]
python -m benchmarks.report --across docs/figures/forgetting*.json   # the forgetting bar over many runs
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

COLUMNS = [
    ("avg_forgetting", "avg forgetting (lower)"),
    ("rcf_preservation", "RCF preservation"),
    ("rcf_class_acc", "RCF class acc"),
    ("new_concept_fidelity", "new-concept fidelity"),
    ("final_fidelity", "final fidelity"),
    ("bwt", "BWT"),
    ("text_alignment", "text alignment"),
]


def table(report: dict) -> str:
    head = "| method | " + " | ".join(c for _, c in COLUMNS) + " | train s / task | step time vs finetune |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 3)]
    for method, row in report["methods"].items():
        cells = [f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}" for k, _ in COLUMNS]
        ratio = row.get("step_time_ratio_vs_finetune")
        lines.append(
            f"| `{method}` | "
            + " | ".join(cells)
            + f" | {row['train_s_per_task']:.1f} | "
            + (f"x{ratio:.2f}" if ratio else "-")
            + " |"
        )
    return "\n".join(lines)


def per_seed(report: dict, key: str) -> str:
    return "\n".join(
        f"- `{m}` {key}: " + ", ".join(f"{v:.3f}" for v in row[key]["per_seed"]) for m, row in report["methods"].items()
    )


def margin_bar(rows: dict, key: str) -> tuple[float, float]:
    """(how far `lfs` is ahead of `finetune` on `key`, twice the larger of their seed stds): the issue's bar
    holds when the first exceeds the second. Lower is better for forgetting, higher for the rest."""
    (lm, ls), (fm, fs) = ((rows[m][key]["mean"], rows[m][key]["std"]) for m in ("lfs", "finetune"))
    return (fm - lm if key == "avg_forgetting" else lm - fm), 2 * max(ls, fs)


def bars(report: dict) -> list[tuple[str, str, bool | None]]:
    """The method issue's bars, computed from one benchmark JSON: (claim, figures, holds). `None` where the
    JSON lacks the methods a claim compares."""
    rows = report["methods"]
    out: list[tuple[str, str, bool | None]] = []

    def stat(method: str, key: str) -> tuple[float, float]:
        return rows[method][key]["mean"], rows[method][key]["std"]

    if "lfs" in rows and "finetune" in rows:
        for key in ("avg_forgetting", "rcf_preservation"):
            margin, need = margin_bar(rows, key)
            out.append(
                (
                    f"lfs beats finetune on {key} by > 2x the larger seed std",
                    f"{margin:.3f} vs 2 x {need / 2:.3f} = {need:.3f}",
                    margin > need,
                )
            )
        (lm, _), (fm, _) = stat("lfs", "new_concept_fidelity"), stat("finetune", "new_concept_fidelity")
        out.append(
            ("lfs new-concept fidelity >= 90% of finetune's", f"{lm:.3f} vs {fm:.3f} ({lm / fm:.0%})", lm >= 0.9 * fm)
        )
        ratio = rows["lfs"].get("step_time_ratio_vs_finetune")
        out.append(("step time ratio <= 1.6", f"x{ratio:.2f}" if ratio else "-", ratio <= 1.6 if ratio else None))
    if "lfs" in rows and "prior-preservation" in rows:
        (lm, _), (pm, _) = stat("lfs", "avg_forgetting"), stat("prior-preservation", "avg_forgetting")
        out.append(("lfs avg forgetting <= prior-preservation's", f"{lm:.3f} vs {pm:.3f}", lm <= pm))
    minutes = report["wall_seconds"] / 60
    out.append(
        (
            f"{len(rows)} methods x {len(next(iter(rows.values()))['avg_forgetting']['per_seed'])} seeds under 90 min",
            f"{minutes:.1f} min",
            minutes < 90,
        )
    )
    return out


def forgetting_ceiling(report: dict) -> tuple[float, float, bool]:
    """The forgetting bar for a method that forgets nothing on any seed (mean 0, std 0): `finetune`'s mean
    against 2 x `finetune`'s std. Where this fails, no method can pass the bar on that run: it is then a
    statement about the baseline's seed spread, not about the method under test."""
    mean, std = (report["methods"]["finetune"]["avg_forgetting"][k] for k in ("mean", "std"))
    return mean, 2 * std, mean > 2 * std


def paired_wins(report: dict, method: str = "lfs", baseline: str = "finetune") -> tuple[int, int]:
    """(seed runs where `method` forgets less than `baseline`, seed runs with a strict order). The rows of
    one run share their seeds, in the same order."""
    ours = report["methods"][method]["avg_forgetting"]["per_seed"]
    theirs = report["methods"][baseline]["avg_forgetting"]["per_seed"]
    return sum(a < b for a, b in zip(ours, theirs)), sum(a != b for a, b in zip(ours, theirs))


def sign_test_p(wins: int, n: int) -> float:
    """One-sided exact sign test: P(at least `wins` of `n` under a fair coin)."""
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def across(reports: dict[str, dict]) -> str:
    """One row per run that has `lfs` and `finetune`: the forgetting bar as measured, the same bar for a
    method with zero forgetting, and the per-seed comparison; then every seed run pooled."""
    lines = [
        "| run | concepts | adapter | bar: margin vs 2 x larger std | bar if `lfs` forgot nothing | "
        "`lfs` < `finetune` per seed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    total_wins = total_n = 0
    for name, report in reports.items():
        rows = report.get("methods", {})
        if "lfs" not in rows or "finetune" not in rows:
            continue
        margin, need = margin_bar(rows, "avg_forgetting")
        ceiling_mean, ceiling_need, ceiling_holds = forgetting_ceiling(report)
        wins, n = paired_wins(report)
        total_wins, total_n = total_wins + wins, total_n + n
        adapter = report.get("training", {}).get("adapter", "lora")  # runs from before the switch were LoRA
        concepts = re.search(r"--concepts (\S+)", report.get("command", ""))
        lines.append(
            f"| {name} | {concepts[1] if concepts else '?'} | {adapter} | {margin:.3f} vs {need:.3f}: "
            f"{'yes' if margin > need else '**no**'} | {ceiling_mean:.3f} vs {ceiling_need:.3f}: "
            f"{'yes' if ceiling_holds else '**no**'} | {wins} of {n} |"
        )
    lines.append(
        f"\nPooled: `lfs` forgets less than `finetune` in {total_wins} of {total_n} seed runs "
        f"(one-sided sign test p = {sign_test_p(total_wins, total_n):.2g})."
    )
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--across"]:
        print(across({Path(p).stem: json.loads(Path(p).read_text()) for p in sys.argv[2:]}))
        return
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
