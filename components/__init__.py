"""lfsd's components: the method, the world it is measured in, and the pipeline's parts (no Prefect).

Rooms, lowest layer first (tests/unit/test_layout.py holds the order; imports only run down):
    config, state, device, progress, visuals, stepping   typed params.yaml; where runtime state lives; the one
                                                 device and precision; progress bars; image grids; how chains
                                                 run and time their steps
    checksums             file hashes and the one error for bytes that differ from their record
    redaction             credentials out of every URI lfsd prints, logs, tags or writes into an artifact
    world, model          the procedural world; the text-to-image model bundle and its one DDIM loop
    lifelong, validation, versioning   the chain as data; concept-folder validation; DVC + git
    evaluation            the evaluator and the forgetting protocol
    pretraining, training the dvc.yaml stages that train the base; THE method (LFS-Diffusion)
    registry, ray_train   MLflow packaging, aliases and exports; Ray Train launchers of the method's loop
    workspace             a workspace's layout, writer lock, recovery and MLflow store
    publishing            MLflow runs and registration, the promotion gate, DVC metrics, reports
    onboarding, erasure   the onboarding steps; the removal's steps
    chains                every command that writes: lock, catch-up and the order of the steps
    cli, showcase         `lfsd`; `python -m components.showcase`
"""
