"""Prefect 3 flows: thin wrappers that chain `components.onboarding` steps.

Importing this package first points Prefect at state inside the workspace (PREFECT_HOME under
.lfsd/prefect, the ephemeral API with a startup timeout this 2-core machine needs), unless the
environment already says otherwise (PREFECT_API_URL for a real server: docs/operations.md).
"""

from flows.env import configure_prefect

configure_prefect()
