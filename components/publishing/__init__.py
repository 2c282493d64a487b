"""What a chain step publishes, and where a person reads it (no orchestration imports).

concept_run   one step's MLflow run and registered version: metrics, figures, lineage tags, model card
parent_run    a sequence's parent run
gate          the promotion gate: params.yaml bounds -> pass/fail, and the verdict applied to `production`
promotion     moving `production` by hand (`lfsd promote`, `lfsd rollback`) under the writer lock
run_story     what a run shows in the MLflow UI without a download (dataset input, system metrics, history)
dvc_metrics   the metrics and plots files DVC shows, committed with each checkpoint
summary       an onboarding told as markdown and table rows (the flows publish them as Prefect artifacts)
"""
