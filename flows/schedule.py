"""`lfsd schedule`: serve `onboard_inbox` as the deployment `onboard-inbox/lfsd-inbox` on a Prefect server.

    export PREFECT_API_URL=http://127.0.0.1:4200/api      # infra/prefect/start-server.sh
    lfsd schedule --cron "*/30 * * * *"                  # or --interval SECONDS

The deployment shows in the Prefect UI with its schedule, and:

- it never runs two inbox ticks at once: a deployment concurrency limit of 1 (kept by the server,
  whoever runs the deployment) whose collision strategy enqueues a run that finds the slot taken
  (AwaitingConcurrencySlot, run later) instead of cancelling it; this serve process also runs at most
  one run at a time;
- it survives a restart of this process: Prefect pauses a served deployment when `serve` stops unless
  told otherwise (`pause_on_shutdown=False` here), so a Ctrl-C, a SIGTERM from systemd or a reboot
  leaves the schedule active and the runs it schedules meanwhile wait (late) for the next `serve`;
  starting again upserts the deployment unpaused, whatever state it was left in.
"""

from __future__ import annotations

from flows.inbox import onboard_inbox

DEPLOYMENT = "lfsd-inbox"
FULL_NAME = f"{onboard_inbox.name}/{DEPLOYMENT}"  # what `prefect deployment run` and the client take
CONCURRENCY_LIMIT = 1


def api_url() -> str | None:
    """The Prefect API this process talks to (PREFECT_API_URL, from the environment or the profile);
    None: only a temporary in-process server, which would vanish with its schedule."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def serve_inbox(workspace: str, cron: str | None = None, interval: float | None = None) -> None:
    """Create (or update) the deployment and serve it until interrupted. `interval` (seconds) wins
    over `cron`; one of them is needed. Runs get `workspace` as their parameter."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.types.entrypoint import EntrypointType

    if interval is None and not cron:
        raise ValueError("serve_inbox needs a cron string or an interval in seconds")
    when = {"interval": interval} if interval is not None else {"cron": cron}
    onboard_inbox.serve(
        name=DEPLOYMENT,
        **when,
        parameters={"workspace": workspace},
        description=f"Onboard the concept folders that settled in {workspace}'s inbox (lfsd schedule).",
        tags=["lfsd", "inbox"],
        paused=False,  # a deployment left paused (an older serve's shutdown, the UI) is resumed on start
        pause_on_shutdown=False,  # ... and stopping this process does not pause it
        global_limit=ConcurrencyLimitConfig(
            limit=CONCURRENCY_LIMIT, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        limit=CONCURRENCY_LIMIT,  # this runner's own slots
        entrypoint_type=EntrypointType.MODULE_PATH,  # flows.inbox.onboard_inbox, wherever serve started
    )
