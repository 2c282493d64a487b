"""Relevant prompts for data-free distillation: what learning concept k is most likely to disturb.

The class word, its nearest class words in the *text encoder's own* embedding space (computed from the
model, not hand-listed) and the prompts of concepts learned before.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def nearest_class_words(tokenizer, text_encoder, class_word: str, candidates: list[str], k: int) -> list[str]:
    """The k candidates whose pooled text embedding ("a {word}") is most cosine-similar to the class word's."""
    others = [c for c in candidates if c != class_word]
    if k <= 0 or not others:
        return []
    ids = tokenizer([f"a {w}" for w in [class_word, *others]], padding="max_length", truncation=True,
                    max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    pooled = text_encoder(ids).pooler_output
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    sims = pooled[1:] @ pooled[0]
    return [others[i] for i in sims.argsort(descending=True)[:k].tolist()]


def relevant_prompts(
    tokenizer, text_encoder, class_word: str, candidates: list[str], k_related: int, previous_subjects: list[str],
    templates: tuple[str, ...] = ("a {}",),
) -> list[str]:
    """Prompts whose outputs the teacher pins down while the student learns the new concept: the class
    word, its nearest class words and the earlier concepts' subjects ("<name> class"), each rendered
    through the caption `templates` the model was trained on (pinning "a dog" alone does not hold
    "a dog on a beach" in place: see docs/method.md).

    The empty prompt is included: classifier-free guidance needs the unconditional prediction intact.
    """
    related = nearest_class_words(tokenizer, text_encoder, class_word, candidates, k_related)
    subjects = [class_word, *related, *previous_subjects]
    prompts = [t.format(s) for s in subjects for t in templates] + [""]
    return list(dict.fromkeys(prompts))

