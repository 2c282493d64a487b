"""The curves of `lfsd benchmark scale` runs: flat JSON for `dvc plots` and PNG figures for docs/results.md.

    python -m benchmarks.scale_plots docs/figures/scale/lfs-seed0.json docs/figures/scale/lfs-seed1.json \
        docs/figures/scale/finetune-seed0.json --out docs/figures/scale

Writes, per report, `curves-METHOD-seedS.json` (one record per step, only finite numbers: what `dvc plots
show` reads, see dvc.yaml) and three figures over all reports: forgetting.png (avg_forgetting: the full
protocol where it was scored, the bounded protocol's estimate at every step; concept 1's fidelity),
cost.png (seconds of training, bounded and full evaluation, loading and one generation batch per step),
storage.png (bytes added per step against 1% of the base). With `--pipeline REPORT` (benchmarks/scale_pipeline.py:
the real `lfsd onboard` per concept), also `curves-pipeline-seedS.json`, pipeline.png (each flow step's seconds
and what each store holds, per k) and a table of the first and last steps' medians.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

CURVE_FIELDS = (
    "avg_forgetting",
    "est_avg_forgetting",
    "final_fidelity",
    "fidelity_first",
    "rcf_similarity",
    "train_s",
    "eval_s",
    "eval_bounded_s",
    "load_s",
    "generate_s",
    "bytes_added",
    "peak_rss_mb",
)


def runs(reports: list[Path]) -> list[tuple[str, list[dict], dict]]:
    """(label "METHOD seed S", rows, report) for every method of every report."""
    out = []
    for path in reports:
        report = json.loads(Path(path).read_text())
        for method, body in report["methods"].items():
            out.append((f"{method} seed {report['seed']}", body["steps"], report))
    return out


def curves(rows: list[dict]) -> list[dict]:
    """One record per step with the finite numeric fields (None -> left out, as dvc plots expects)."""
    return [
        {"k": r["k"], **{f: r[f] for f in CURVE_FIELDS if isinstance(r.get(f), (int, float)) and math.isfinite(r[f])}}
        for r in rows
    ]


def _series(rows: list[dict], field: str) -> tuple[list[int], list[float]]:
    pts = [(r["k"], r[field]) for r in rows if isinstance(r.get(field), (int, float))]
    return [k for k, _ in pts], [v for _, v in pts]


def figures(all_runs, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows, _ in all_runs:
        (line,) = a.plot(*_series(rows, "est_avg_forgetting"), lw=1, alpha=0.7, label=f"{label} (bounded estimate)")
        a.plot(*_series(rows, "avg_forgetting"), "o", color=line.get_color(), label=f"{label} (full protocol)")
        ks, first = _series(rows, "fidelity_first")
        b.plot(ks, first, "o-", ms=3, color=line.get_color(), label=label)
        if first:
            b.axhline(0.9 * first[0], ls="--", c=line.get_color(), lw=0.6)  # the target: 90% of step 1
    a.axhline(0.05, ls="--", c="gray", lw=0.8)
    a.set(xlabel="concepts learned k", ylabel="avg_forgetting", title="Forgetting as the chain grows")
    b.set(
        xlabel="concepts learned k",
        ylabel="fidelity of concept 1",
        title="Concept 1 (scored where the protocol scored it)",
    )
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    paths.append(_save(fig, out / "forgetting.png"))

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for label, rows, _ in all_runs:
        for ax, fields in zip(axes, (("train_s",), ("eval_bounded_s", "eval_s"), ("load_s",), ("generate_s",))):
            for f in fields:
                ax.plot(
                    *_series(rows, f),
                    lw=1,
                    ls="-" if f != "eval_s" else ":",
                    label=f"{label}" + (" full" if f == "eval_s" else ""),
                )
    for ax, title in zip(
        axes,
        ("training s / step", "evaluation s / step (bounded; full dotted)", "load theta_k s", "generate 1 batch s"),
    ):
        ax.set(xlabel="k", title=title)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    paths.append(_save(fig, out / "cost.png"))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, rows, _report in all_runs:
        ks, added = _series(rows, "bytes_added")
        ax.plot(ks, [b / 1024 for b in added], lw=1, label=label)
    base = all_runs[0][2]["base_bytes"]
    ax.axhline(base * 0.01 / 1024, ls="--", c="gray", lw=0.8, label="1% of the base")
    ax.set(xlabel="k", ylabel="KiB added by step k", title="Storage per step (checkpoint + shots)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "storage.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def targets(all_runs, cost: dict | None = None) -> str:
    """The issue's targets at the last step, measured: a markdown table (one row per target and run)."""

    def last_ref(rows):
        return next(r for r in reversed(rows) if r.get("avg_forgetting") is not None)

    lines = ["| target | run | measured | met |", "| --- | --- | --- | --- |"]
    add = lambda t, run, value, ok: lines.append(f"| {t} | {run} | {value} | {'yes' if ok else '**no**'} |")
    finetune = {rep["seed"]: last_ref(rows) for label, rows, rep in all_runs if label.startswith("finetune ")}
    for label, rows, rep in all_runs:
        end, first = last_ref(rows), rows[0]
        if label.startswith("lfs "):
            add(
                "avg_forgetting <= 0.05",
                label,
                f"{end['avg_forgetting']:.3f} (k = {end['k']})",
                end["avg_forgetting"] <= 0.05,
            )
            if rep["seed"] in finetune:
                ft = finetune[rep["seed"]]["avg_forgetting"]
                add(
                    "<= half of finetune's",
                    label,
                    f"{end['avg_forgetting']:.3f} vs {ft:.3f} (x{end['avg_forgetting'] / ft:.2f})",
                    end["avg_forgetting"] <= ft / 2,
                )
            ratio = end["fidelity_first"] / first["fidelity_first"]
            add(
                "concept 1 >= 90% of its step-1 fidelity",
                label,
                f"{end['fidelity_first']:.3f} / {first['fidelity_first']:.3f} = {ratio:.0%}",
                ratio >= 0.9,
            )
        refs = [r for r in rows if r.get("avg_forgetting") is not None and r["est_protocol"] != "full"]
        if refs:
            worst = max(refs, key=lambda r: abs(r["est_avg_forgetting"] - r["avg_forgetting"]))
            add(
                "bounded estimate vs full row (no target: its error)",
                label,
                f"max |error| {abs(worst['est_avg_forgetting'] - worst['avg_forgetting']):.3f} at k = {worst['k']}",
                True,
            )
        bounded = [r["eval_bounded_s"] for r in rows if r["est_protocol"] != "full"]
        if bounded:
            half = len(bounded) // 2
            early, late = sorted(bounded[:half])[half // 2], sorted(bounded[half:])[(len(bounded) - half) // 2]
            add(
                "bounded evaluation flat in k (median, 2nd half / 1st half of the bounded steps)",
                label,
                f"{late:.1f} / {early:.1f} s = x{late / early:.2f}",
                late / early <= 1.2,
            )
        share = end["bytes_added"] / rep["base_bytes"]
        add(
            "bytes per step <= 1% of the base",
            label,
            f"{end['bytes_added'] / 1024:.0f} KiB = {share:.2%}",
            share <= 0.01,
        )
        rss = rows[-1]["peak_rss_mb"] / first["peak_rss_mb"]
        add(
            "peak RSS at the last step <= 1.2x step 1",
            label,
            f"{rows[-1]['peak_rss_mb']:.0f} / {first['peak_rss_mb']:.0f} MB = x{rss:.2f}",
            rss <= 1.2,
        )
    if cost:
        name = f"{cost['method']}, paired probe k = {cost['kn']} vs 1"
        for task, bound in (("train", 1.2), ("generate", 1.1), ("load", 1.5), ("score", 1.2)):
            r = cost["ratio_kn_over_k1"][task]
            add(
                f"{task} at k = {cost['kn']} <= {bound}x k = 1"
                + (" (one concept's scoring: no target)" if task == "score" else ""),
                name,
                f"{cost['median']['kn'][task]:.2f} / {cost['median']['k1'][task]:.2f} s = x{r:.2f}",
                r <= bound,
            )
    return "\n".join(lines)


PIPELINE_STAGES = ("validate", "version_dataset", "train", "evaluate", "version_checkpoint")
PIPELINE_STORES = ("bytes_mlflow_artifacts", "bytes_dvc_cache", "bytes_git", "bytes_checkpoints")


def pipeline_rows(report: dict) -> list[dict]:
    """The pipeline report's steps, with `other_s`: the command's wall time outside the five flow steps
    MLflow timed (process start and imports, the ephemeral Prefect API, registration, the gate)."""
    return [{**r, "other_s": r["step_s"] - sum(r.get(s) or 0 for s in PIPELINE_STAGES)} for r in report["steps"]]


def pipeline_figure(report: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pipeline_rows(report)
    ks = [r["k"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    a.stackplot(
        ks,
        *[[r.get(s) or 0 for r in rows] for s in (*PIPELINE_STAGES, "other_s")],
        labels=[*PIPELINE_STAGES, "other (start, Prefect API, register, gate)"],
        alpha=0.8,
    )
    a.plot(ks, [r["train_s"] for r in rows], "k:", lw=1, label="training loop inside the Ray worker")
    a.set(xlabel="concepts learned k", ylabel="s", title="One `lfsd onboard` per concept: seconds per step")
    a.legend(fontsize=6, loc="upper left")
    for field in PIPELINE_STORES:
        b.plot(ks, [r[field] / 2**20 for r in rows], lw=1.2, label=field.removeprefix("bytes_"))
    b.axhline(report["base_bytes"] / 2**20, ls="--", c="gray", lw=0.8, label="the base")
    b.set(xlabel="concepts learned k", ylabel="MiB held", title="What each store holds after step k")
    b.legend(fontsize=7)
    return _save(fig, out / "pipeline.png")


def pipeline_table(report: dict, n: int = 5, first_k: int = 1) -> str:
    """Median seconds of each flow step over `n` steps from k = `first_k` and over the last `n`, and their
    ratio (`first_k` > 1 sets aside early steps that shared the machine with something heavier)."""
    rows = pipeline_rows(report)
    first, last = rows[first_k - 1 : first_k - 1 + n], rows[-n:]
    med = lambda rs, f: sorted(r.get(f) or 0 for r in rs)[len(rs) // 2]
    lines = [
        f"| step (median, k = {first[0]['k']}-{first[-1]['k']} / k = {last[0]['k']}-{last[-1]['k']}) "
        "| first s | last s | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for f in (*PIPELINE_STAGES, "train_s", "other_s", "step_s"):
        a, b = med(first, f), med(last, f)
        lines.append(f"| {f} | {a:.1f} | {b:.1f} | x{b / a:.2f} |" if a else f"| {f} | {a:.1f} | {b:.1f} | - |")
    grow = (rows[-1]["bytes_mlflow_artifacts"] - rows[0]["bytes_mlflow_artifacts"]) / max(1, len(rows) - 1)
    lines.append(f"| MLflow artifact store per step (mean over k = 2-{rows[-1]['k']}) | | {grow / 2**20:.2f} MiB | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/figures/scale"))
    ap.add_argument(
        "--cost", type=Path, default=None, help="A benchmarks/scale_cost report: its ratios join the targets."
    )
    ap.add_argument(
        "--pipeline", type=Path, default=None, help="A benchmarks/scale_pipeline report: its figure and table."
    )
    ap.add_argument("--pipeline-first", type=int, default=1, help="The pipeline table's first window starts at this k.")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    all_runs = runs(args.reports)
    for label, rows, _ in all_runs:
        method, seed = label.split(" seed ")
        (args.out / f"curves-{method}-seed{seed}.json").write_text(json.dumps(curves(rows), indent=1))
    for p in figures(all_runs, args.out):
        print(p)
    print(targets(all_runs, json.loads(args.cost.read_text()) if args.cost else None))
    if args.pipeline:
        report = json.loads(args.pipeline.read_text())
        fields = ("k", "step_s", "train_s", "other_s", *PIPELINE_STAGES, *PIPELINE_STORES)
        (args.out / f"curves-pipeline-seed{report['seed']}.json").write_text(
            json.dumps(
                [{f: r[f] for f in fields if isinstance(r.get(f), (int, float))} for r in pipeline_rows(report)],
                indent=1,
            )
        )
        print(pipeline_figure(report, args.out))
        print(pipeline_table(report, first_k=args.pipeline_first))


if __name__ == "__main__":
    main()
