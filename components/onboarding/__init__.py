"""Onboarding a concept into the lifelong model, with no orchestration imports.

    chain       THE order of the steps, their timing, undoing a failed attempt (one place)
    steps       each step as a plain function (validate, version, train, evaluate, commit, register, gate)
    workspace   where data, checkpoints and the ledger live; what is learned so far
    dataset     validated folder -> normalised copy in data/concepts/<name>/ (+ dvc add/push)
    evaluation  the forgetting protocol on the new checkpoint, history carried in the checkpoint
    gate        params.yaml bounds -> pass/fail with reasons
    register    MLflow run, pyfunc model version with lineage tags, candidate/production aliases

The Prefect flows (`flows/`) run `chain.onboard` with a runner that makes each step a Prefect task and
a Ray Train launcher; tests and the overhead benchmark run it with plain calls and in-process training.
"""
