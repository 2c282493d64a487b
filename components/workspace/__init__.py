"""A workspace and what keeps it safe for one writer at a time (no orchestration imports).

    layout        where everything lives (data, checkpoints, models, metrics, erasure records); finding,
                  loading and creating a workspace (`lfsd init`)
    side_chain    a second chain beside the workspace's own (another base: `lfsd migrate`)
    lock          the one writer lock every changing command holds
    recovery      after a killed writer: discard what HEAD does not know, restore what it does, end dead runs
    mlflow_store  the workspace's one way into MLflow (tracking, client, registered versions)
    faults        test-only fault injection at named points of the chains
    outages       which failures are a service's outage (retry the command), not the input's fault

Finishing what a killed writer had committed needs the chains' own steps: `components/chains/catch_up.py`.
"""
