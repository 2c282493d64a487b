"""The onboarding steps: one concept folder into the lifelong model (no orchestration imports).

    steps     each step as a plain function (validate, version dataset, train, evaluate, version checkpoint,
              register, gate, discard a failed attempt)
    dataset   validated folder -> normalised copy in data/concepts/<name>/ (+ dvc add/push)
    nearness_check  before training: refuse a learned concept again, warn about near ones, keep the embeddings
    scoring   the forgetting protocol on a new checkpoint, the history carried in the checkpoint
    finish    register-then-gate, and finishing an onboarding killed between its commit and registration
    inbox     which inbox folders have settled and are ready to onboard

The order of the steps is `components/chains/onboard.py`; the Prefect flows (`flows/`) run that chain
with a runner that makes each step a Prefect task and a Ray Train launcher (`components/ray_train`).
"""
