"""The model card: what a reviewer reads on a registered version before promoting it, as the version's
MLflow description (markdown, rendered by the registry UI), and the difference between two versions
that `lfsd promote` shows before it moves `production`.

Everything in the card comes from the version's run (metrics, the sample grid) and tags (the ledger,
lineage, gate): a card can be re-rendered from the registry alone.
"""

from __future__ import annotations

from dataclasses import dataclass

CARD_METRICS = (
    "new_concept_fidelity",
    "final_fidelity",
    "avg_forgetting",
    "rcf_preservation",
    "text_alignment",
    "confusion",  # share of the concepts' samples nearer another learned concept (components/evaluation/confusion.py)
)


@dataclass(frozen=True)
class CardConcept:
    task: int
    name: str
    token: str
    class_word: str


def render_card(
    model_name: str,
    version: str,
    concepts: list[CardConcept],
    metrics: dict[str, float],
    tags: dict[str, str],
    run_id: str,
    samples_artifact: str = "figures/samples.png",
) -> str:
    """Markdown: the concepts the version holds, the gate's decision with every bound and value, the
    lineage, the sample grid and how to generate with it."""
    newest = concepts[-1] if concepts else None
    gate = tags.get("lfsd.gate", "not decided yet")
    change = (
        f": removes `{tags['lfsd.forgot']}` (erasure: {tags.get('lfsd.forgot_reason', '')})"
        if tags.get("lfsd.forgot")
        else f": adds `{newest.name}` ({newest.class_word})"
        if newest
        else ""
    )
    lines = [
        f"### {model_name} v{version}" + change,
        "",
        "| task | concept | trigger token | class word |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {c.task:02d} | {c.name} | `{c.token}` | {c.class_word} |" for c in concepts]
    lines += [
        "",
        f"**Gate: {gate}**"
        + (f": {tags['lfsd.gate_reason'].split(': ', 1)[-1]}" if tags.get("lfsd.gate_reason") else ""),
        "",
    ]
    if tags.get("lfsd.near"):  # the nearness check before training (components/onboarding/nearness_check.py)
        lines += [
            f"**Near learned concepts: {tags['lfsd.near']}** (nearness = cosine of the evaluator's reference"
            " vectors; similar concepts can bleed into each other: they were scored in full at this step)",
            "",
        ]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {metrics[k]:.3f} |" for k in CARD_METRICS if k in metrics and metrics[k] == metrics[k]]
    lines += [
        "",
        "Lineage: "
        + ", ".join(
            f"{k.removeprefix('lfsd.')} `{tags[k]}`"
            for k in (
                "lfsd.dataset_dvc_md5",
                "lfsd.checkpoint_dvc_md5",
                "lfsd.git_commit",
                "lfsd.method",
                "lfsd.base_hash",
            )
            if k in tags
        ),
    ]
    lines += [f"Run: `{run_id}`; sample grid: `runs:/{run_id}/{samples_artifact}`", ""]
    if newest:
        lines += [
            "Generate:",
            "",
            "```bash",
            f'lfsd generate "a {newest.token} {newest.class_word} on a white background" '
            f"--model models:/{model_name}/{version} --concept {newest.name} --out grid.png",
            "```",
        ]
    return "\n".join(lines)


def version_card(client, model_name: str, version: str) -> str:
    """The card of a registered version, re-rendered from its run and tags."""
    mv = client.get_model_version(model_name, str(version))
    run = client.get_run(mv.run_id)
    tags = dict(mv.tags or {})
    return render_card(model_name, str(version), concepts_of(tags), dict(run.data.metrics), tags, mv.run_id)


def concepts_of(tags: dict[str, str]) -> list[CardConcept]:
    """The version's concepts from its `lfsd.card_concepts` tag (task:name:token:class_word, comma-separated)."""
    out = []
    for item in filter(None, tags.get("lfsd.card_concepts", "").split(",")):
        task, name, token, class_word = item.split(":", 3)
        out.append(CardConcept(int(task), name, token, class_word))
    return out


def concepts_tag(concepts: list[CardConcept]) -> str:
    return ",".join(f"{c.task}:{c.name}:{c.token}:{c.class_word}" for c in concepts)


def promotion_diff(client, model_name: str, current: str | None, candidate: str) -> str:
    """Plain text: the concepts `candidate` adds or drops against `current` and every card metric's change."""
    new = client.get_model_version(model_name, str(candidate))
    new_metrics = client.get_run(new.run_id).data.metrics
    if current is None:
        return f"production: none yet -> version {candidate}"
    old = client.get_model_version(model_name, str(current))
    old_metrics = client.get_run(old.run_id).data.metrics
    old_names = [c.name for c in concepts_of(old.tags or {})]
    new_names = [c.name for c in concepts_of(new.tags or {})]
    lines = [
        f"production: version {current} -> version {candidate}",
        "  concepts added:   " + (", ".join(n for n in new_names if n not in old_names) or "none"),
        "  concepts dropped: " + (", ".join(n for n in old_names if n not in new_names) or "none"),
    ]
    for k in CARD_METRICS:
        if k in old_metrics and k in new_metrics:
            lines.append(
                f"  {k:22s} {old_metrics[k]:.3f} -> {new_metrics[k]:.3f} ({new_metrics[k] - old_metrics[k]:+.3f})"
            )
    return "\n".join(lines)
