"""Erasure requests: a concept taken out of the lifelong model and its photos purged everywhere.

    record         the erasure record (what, from where, when, why, by whom) and the plan (refusals)
    removal_steps  the removal's steps: write the chain without it, evaluate, commit, register, purge
    relearn        relearning the concepts after the erased one (`--retrain-later`), with onboarding's steps
    pull           `lfsd pull`: the checked-out commit's data back from DVC, erased data named as such

The order of the steps is `components/chains/forget.py`.
"""
