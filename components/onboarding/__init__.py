"""Onboarding a concept into the lifelong model, step by step, with no orchestration imports.

The Prefect flows (`flows/`) chain these steps; `chain.onboard_in_process` chains the very same steps
without Prefect or Ray (tests, the overhead benchmark). Each step does one job:

    workspace   where data, checkpoints and the ledger live; what is learned so far
    dataset     validated folder -> normalised copy in data/concepts/<name>/ (+ dvc add/push)
    evaluation  the forgetting protocol on the new checkpoint, history carried in the checkpoint
    gate        params.yaml thresholds -> pass/fail with reasons
    register    MLflow run, pyfunc model version with lineage tags, candidate/production aliases
"""
