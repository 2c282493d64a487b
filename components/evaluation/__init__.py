"""Measuring: the evaluator and the forgetting protocol.

embedder      the evaluator: a CLIP analogue (image-text) and a DINO analogue (instance identity)
forgetting    the forgetting protocol: A[k][j], RCF, and the sequence metrics (one definition each)
confusion     concept confusion: the share of a concept's samples nearer another learned concept, and the margin
nearness      how near a new concept's shots are to the learned concepts' (embeddings only), what the chain keeps
bounded       the bounded protocol for long chains: what one step scores
base_quality  `lfsd evaluate-base`: is the evaluator good, is the base good, on fresh data
scorecard     two chains of the same concepts side by side (a migration to another base)
plots         the heatmap of A[k][j] and the last step's sample grid
"""
