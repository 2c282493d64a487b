"""Prefect 3 flows: thin wrappers over the chains of `components.chains`, one flow module per chain
under the chain's own name (`onboard`, `sequence`, `forget`; `registry` wraps `components.publishing.promotion`):
the same concept at two layers, the flow adding only Prefect's tasks, artifacts and deployments.

Importing this package first points Prefect at state inside the workspace (PREFECT_HOME under
.lfsd/prefect, the ephemeral API with a startup timeout this 2-core machine needs), unless the
environment already says otherwise (PREFECT_API_URL for a real server: docs/operations.md).
"""

from flows.env import configure_prefect

configure_prefect()
