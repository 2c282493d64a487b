"""What data-free KD pins down in task k: the relevant prompts, bounded however long the chain.

Subjects: the new concept's class word, its `kd_related_classes` nearest class words in the text
encoder's own embedding space, and at most `kd_previous_subjects` earlier concepts ("<name> class");
each through the caption templates the base knows, plus "" (the unconditional branch guidance needs).
The teacher bank walks these prompts round robin (`teacher_bank.TeacherBank`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def nearest_class_words(tokenizer, text_encoder, class_word: str, candidates: list[str], k: int) -> list[str]:
    """The k candidates whose pooled text embedding ("a {word}") is most cosine-similar to the class word's."""
    others = [c for c in candidates if c != class_word]
    if k <= 0 or not others:
        return []
    ids = tokenizer(
        [f"a {w}" for w in [class_word, *others]],
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
    pooled = F.normalize(text_encoder(ids).pooler_output, dim=-1)  # (1 + N, D)
    sims = pooled[1:] @ pooled[0]
    return [others[i] for i in sims.argsort(descending=True)[:k].tolist()]


def earlier_subjects(previous: list[tuple[str, str]], near_classes: list[str], limit: int, task: int) -> list[str]:
    """At most `limit` of the earlier concepts' subjects ("<name> class", given with their class word), in
    ledger order. Those of the new concept's class or a nearest class come first: relevant-concept
    forgetting hits them. The rest rotate with the task number, so each is pinned again within
    ceil(rest / room) tasks. Why a bound: the teacher bank visits 16 trajectories x 4 draws per task; an
    unbounded list grew by one subject per task and the bank only ever reached its head (the oldest
    concepts), while the KD cost per task stays what it was at k = 1."""
    if len(previous) <= limit:
        return [s for s, _ in previous]

    def rotated(indices: list[int], room: int) -> list[int]:
        start = (task * room) % len(indices) if indices else 0
        return [indices[(start + j) % len(indices)] for j in range(min(room, len(indices)))]

    near = [i for i, (_, c) in enumerate(previous) if c in near_classes]
    chosen = rotated(near, limit)
    chosen += rotated([i for i in range(len(previous)) if i not in set(near)], limit - len(chosen))
    return [previous[i][0] for i in sorted(chosen)]


def relevant_prompts(
    tokenizer,
    text_encoder,
    class_word: str,
    candidates: list[str],
    k_related: int,
    previous: list[tuple[str, str]],
    templates: tuple[str, ...],
    max_previous: int,
    task: int,
) -> list[str]:
    """Subjects (class word, nearest classes, up to `max_previous` earlier "<name> class") x caption
    templates, then ""."""
    related = nearest_class_words(tokenizer, text_encoder, class_word, candidates, k_related)
    subjects = [class_word, *related, *earlier_subjects(previous, [class_word, *related], max_previous, task)]
    prompts = [t.format(s) for s in subjects for t in templates] + [""]
    return list(dict.fromkeys(prompts))
