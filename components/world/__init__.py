"""The embedded procedural world the base, the evaluator and every benchmark are made of.

vocabulary   the closed vocabulary: classes, colours, backgrounds, patterns, sizes
render       rasterising objects: analytic shape masks, supersampled to 32x32
scenes       sampling the world: captioned scenes, persistent instances seen from many views
concepts     concept folders: K shots of one unseen instance plus `concept.yaml`
similar      the stress sequence: concepts sharing class, colour or pattern with an earlier one at a set rate
"""
