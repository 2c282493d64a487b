#!/usr/bin/env bash
# Serve the inbox onboarding flow on a cron schedule (default every 30 minutes). Needs PREFECT_API_URL.
# Concept folders dropped into `inbox/` are onboarded in name order; see flows/inbox.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PREFECT_API_URL:?start infra/prefect/start-server.sh and export PREFECT_API_URL first}"
exec .venv/bin/lfsd schedule --cron "${CRON:-*/30 * * * *}"
