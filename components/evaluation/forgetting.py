"""The forgetting protocol: after every task, score every concept learned so far and the classes
around them, with fixed prompts and fixed seeds, so steps and methods are compared on paired samples.

A[k][j] = concept fidelity of concept j after task k (instance-embedding cosine of generated images to
the mean of C_j's references). RCF = the class word and its related classes drawn by theta_k vs theta_0
from the same seeds: class accuracy and paired image similarity (CLIP-I analogue). Each scored concept
also gets its confusion with the other learned concepts (`confusion.py`: the same embeddings and
reference vectors as its fidelity).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from components.config import ForgettingConfig
from components.evaluation.base_quality import zero_shot
from components.evaluation.confusion import concept_confusion, reference_vector
from components.evaluation.embedder import ImageEmbedder, ImageTextEmbedder
from components.model.references import load_reference_folder
from components.model.sampling import generate
from components.world.vocabulary import BACKGROUNDS


@dataclass
class ConceptScore:
    name: str
    fidelity: float  # DINO-analogue cosine to the references' mean embedding
    clip_i: float  # CLIP-analogue image cosine to the references' mean embedding
    text_alignment: float  # CLIP-analogue cosine to the prompt with the token removed
    confusion: float = math.nan  # share of samples nearer another learned concept (confusion.py); NaN: not measured
    margin: float = math.nan  # mean own - best other cosine (confusion.py); NaN: no other concept, or not measured
    nearest: str | None = None  # the learned concept its samples are nearest to after its own


@dataclass
class StepEval:
    task: int
    concepts: list[ConceptScore]
    rcf_class_acc: float
    rcf_similarity: float  # paired CLIP-I cosine between theta_k's and theta_0's images
    samples: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # name -> images, for grids


def concept_prompts(token: str, class_word: str) -> list[str]:
    """The concept in four contexts (backgrounds)."""
    return [f"a {token} {class_word} on a {bg} background" for bg in BACKGROUNDS]


def rcf_prompts(class_words: list[str]) -> list[str]:
    return [f"a {c} on a {bg} background" for c in class_words for bg in ("white", "gray")]


def _seeds(tag: int, n: int) -> list[int]:
    return [tag * 1000 + i for i in range(n)]


class ForgettingEvaluator:
    """Holds the evaluator embedders and theta_0's RCF images (drawn once, reused at every step)."""

    def __init__(self, clip: ImageTextEmbedder, dino: ImageEmbedder, cfg: ForgettingConfig):
        self.clip, self.dino, self.cfg = clip, dino, cfg
        self._base_rcf: dict[str, torch.Tensor] = {}
        self._dino_refs: dict[str, torch.Tensor] = {}  # references folder -> its DINO-analogue embeddings

    def _draw(self, bundle, prompts: list[str], seeds: list[int], refs: torch.Tensor | None = None) -> torch.Tensor:
        return generate(
            bundle, prompts, seeds, references=refs, steps=self.cfg.steps, guidance_scale=self.cfg.guidance_scale
        )

    def base_rcf_images(self, base_bundle, class_words: list[str]) -> None:
        """Draw theta_0's images for any RCF prompt not drawn yet."""
        for p in rcf_prompts(class_words):
            if p not in self._base_rcf:
                self._base_rcf[p] = self._draw(
                    base_bundle, [p] * self.cfg.rcf_seeds, _seeds(hash_prompt(p), self.cfg.rcf_seeds)
                )

    @staticmethod
    def work_items(model, rcf_classes: list[str], only: list[int] | None = None) -> int:
        """How many `advance` calls one `score_step` makes."""
        return (len(model.ledger.entries) if only is None else len(only)) + len(rcf_prompts(rcf_classes))

    def _dino_references(self, entry, image_size: int, refs_all: torch.Tensor | None = None) -> torch.Tensor:
        """(M, E) DINO-analogue embeddings of a ledger entry's references, embedded once per evaluator and
        folder contents (keyed by each file's name, size and mtime: a folder rewritten in place is re-read)."""
        folder = Path(entry.references)
        key = str(folder) + repr(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()))
        if key not in self._dino_refs:
            if refs_all is None:
                refs_all = load_reference_folder(entry.references, image_size, limit=64)
            self._dino_refs[key] = self.dino.embed_images(refs_all)
        return self._dino_refs[key]

    def score_concept_embedded(self, model, entry, icgen: bool) -> tuple[ConceptScore, torch.Tensor, torch.Tensor]:
        """`score_concept`, plus the samples' DINO-analogue embeddings (N, E), for `with_confusion`."""
        b, n = model.bundle, self.cfg.images_per_prompt
        refs_all = load_reference_folder(entry.references, b.image_size, limit=64)
        prompts = [p for p in concept_prompts(entry.token, entry.class_word) for _ in range(n)]
        refs = None
        if icgen and self.cfg.use_references:
            refs = refs_all[:3].unsqueeze(0).expand(len(prompts), -1, -1, -1, -1)
        images = self._draw(b, prompts, _seeds(entry.task, len(prompts)), refs)
        dino_ref = reference_vector(self._dino_references(entry, b.image_size, refs_all))
        clip_ref = reference_vector(self.clip.embed_images(refs_all))
        clip_img, dino_img = self.clip.embed_images(images), self.dino.embed_images(images)
        texts = self.clip.embed_texts([p.replace(entry.token + " ", "") for p in prompts])
        score = ConceptScore(
            entry.name,
            fidelity=float((dino_img @ dino_ref).mean()),
            clip_i=float((clip_img @ clip_ref).mean()),
            text_alignment=float((clip_img * texts).sum(-1).mean()),
        )
        return score, images, dino_img

    def score_concept(self, model, entry, icgen: bool) -> tuple[ConceptScore, torch.Tensor]:
        """One concept (a ledger entry: token, class word, references) drawn by `model` with the
        protocol's prompts and seeds, scored against its references; also for a concept the model no
        longer holds (after a removal: its token is then plain text to the tokenizer)."""
        score, images, _ = self.score_concept_embedded(model, entry, icgen)
        return score, images

    def with_confusion(
        self, model, scores: list[ConceptScore], embedded: dict[str, torch.Tensor]
    ) -> list[ConceptScore]:
        """`scores` with each concept's confusion (`confusion.py`) against the references of every concept
        the ledger holds, scored this step or not (embedding references draws nothing); `embedded`: name ->
        its samples' embeddings, from `score_concept_embedded`."""
        size = model.bundle.image_size
        refs = {e.name: self._dino_references(e, size) for e in model.ledger.entries}
        confusion = concept_confusion({c.name: embedded[c.name] for c in scores}, refs)
        return [dataclasses.replace(c, **asdict(confusion[c.name])) for c in scores]  # same field names

    def score_rcf_prompt(self, model, prompt: str) -> tuple[float, float]:
        """One RCF prompt drawn by `model` from the protocol's seeds: (class accuracy, paired similarity to
        theta_0's images of it; `base_rcf_images` must have drawn those)."""
        images = self._draw(
            model.bundle, [prompt] * self.cfg.rcf_seeds, _seeds(hash_prompt(prompt), self.cfg.rcf_seeds)
        )
        want = prompt.split(" ")[1]
        pred, _ = zero_shot(self.clip, images)
        sim = (self.clip.embed_images(images) * self.clip.embed_images(self._base_rcf[prompt])).sum(-1).mean()
        return float(np.mean([q == want for q in pred])), float(sim)

    def score_step(
        self, model, icgen: bool, rcf_classes: list[str], advance=None, only: list[int] | None = None
    ) -> StepEval:
        """Score the learned concepts (all, or the ledger positions `only`: the bounded protocol's plan) and
        the RCF classes under `model` (a LifelongModel); `advance(1)` after each concept and each class
        prompt (a progress bar's; total `work_items`); each scored concept with its confusion (`with_confusion`)."""
        advance = advance or (lambda k=1: None)
        scores, samples, embedded = [], {}, {}
        entries = model.ledger.entries if only is None else [model.ledger.entries[i] for i in only]
        for entry in entries:
            score, samples[entry.name], embedded[entry.name] = self.score_concept_embedded(model, entry, icgen)
            scores.append(score)
            advance(1)
        scores = self.with_confusion(model, scores, embedded)
        accs, sims = [], []
        for p in rcf_prompts(rcf_classes):
            acc, sim = self.score_rcf_prompt(model, p)
            accs.append(acc)
            sims.append(sim)
            advance(1)
        task = model.ledger.entries[-1].task if model.ledger.entries else 0
        return StepEval(
            task,
            scores,
            float(np.mean(accs)) if accs else float("nan"),
            float(np.mean(sims)) if sims else float("nan"),
            samples,
        )


def hash_prompt(prompt: str) -> int:
    """A stable small integer per prompt (Python's hash() is salted per process)."""
    import zlib

    return zlib.crc32(prompt.encode()) % 100_000


def forgetting_at(a: np.ndarray, row: int) -> float:
    """Average forgetting after task `row` (0-based) of the matrix A: over the earlier concepts scored in
    that row, the best earlier score minus the score now. Cells the bounded protocol left unscored (NaN)
    are skipped, in the row and among the earlier scores; 0.0 when no earlier concept was scored. The one
    definition: the sequence metrics and the per-step history (`publishing/dvc_metrics.py`) both use it."""
    a = np.asarray(a, dtype=float)
    scored = [j for j in range(min(row + 1, a.shape[1]) - 1) if not np.isnan(a[row, j])]
    return float(np.mean([np.nanmax(a[:row, j]) - a[row, j] for j in scored])) if scored else 0.0


def sequence_metrics(steps: list[StepEval]) -> dict:
    """The paper-style summary over a whole sequence of K tasks.

    A step of the bounded protocol scores only some earlier concepts (`bounded.step_plan`): their cells
    stay NaN, and the last row's summaries (final fidelity, forgetting, BWT) are then the means over the
    concepts it did score, an estimate of the full row's (a full last row gives the exact values)."""
    k = len(steps)
    names = list(dict.fromkeys(c.name for s in steps for c in s.concepts))  # learning order
    a = np.full((k, len(names)), np.nan)
    for i, s in enumerate(steps):
        for c in s.concepts:
            a[i, names.index(c.name)] = c.fidelity
    final = a[-1][~np.isnan(a[-1])]
    scored = [j for j in range(min(k, len(names)) - 1) if not np.isnan(a[-1, j])]
    bwt = [a[-1, j] - a[j, j] for j in scored] if scored else [0.0]
    return {
        "matrix": a.tolist(),
        "concepts": names,
        "final_fidelity": float(np.mean(final)),
        "avg_forgetting": forgetting_at(a, k - 1),
        "bwt": float(np.mean(bwt)),
        "rcf_preservation": float(np.mean([s.rcf_similarity for s in steps])),
        "rcf_class_acc": float(np.mean([s.rcf_class_acc for s in steps])),
        "new_concept_fidelity": float(np.nanmean([a[i, i] for i in range(min(k, len(names)))])),
        "text_alignment": float(np.mean([c.text_alignment for c in steps[-1].concepts])),
        "final_clip_i": float(np.mean([c.clip_i for c in steps[-1].concepts])),
        "confusion": _mean_measured([c.confusion for c in steps[-1].concepts]),
        "margin": _mean_measured([c.margin for c in steps[-1].concepts]),
    }


def _mean_measured(values: list[float]) -> float:
    """The mean over the last row's concepts that have the value (NaN: none measured, or one concept)."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def step_record(step: StepEval) -> dict:
    return {
        "task": step.task,
        "concepts": [asdict(c) for c in step.concepts],
        "rcf_class_acc": step.rcf_class_acc,
        "rcf_similarity": step.rcf_similarity,
    }
