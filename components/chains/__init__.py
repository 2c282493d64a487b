"""The chains: every command that changes a workspace, each the ONE place that orders its steps.

Each takes the workspace's writer lock, catches up on what a killed writer left (`catch_up`), then runs
its steps through the caller's runner (plain calls, or each step a Prefect task: `flows/` wraps these
same chains one to one, under the same module names) and undoes a failed attempt.

    onboard    a concept folder: validate -> version dataset -> train -> evaluate -> commit -> register -> gate
    sequence   several concepts in order under one MLflow parent run, on one warm Ray worker group
    forget     an erasure request: plan -> chain without it -> (relearn) -> evaluate -> commit -> register -> purge
    migrate    every live concept again on another base, beside the old chain (lock per concept)
    migrate_plan     what a migration reads first: the base's checks, the concepts and their recorded settings
    migrate_publish  a migration's end: the new chain registered, its gate as tags, the scorecard
    catch_up   before any write: finish what a killed writer had committed (registration, purge)
"""
