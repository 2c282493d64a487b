#!/usr/bin/env bash
# A Prefect 3 server: the UI, run history, and what schedules need (`lfsd schedule` serves the inbox
# flow against it). Its database lives under PREFECT_HOME (.lfsd/prefect by default).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.lfsd/prefect}
export PREFECT_SERVER_ANALYTICS_ENABLED=false
echo "then: export PREFECT_API_URL=http://${HOST:-127.0.0.1}:${PORT:-4200}/api"
exec .venv/bin/prefect server start --host "${HOST:-127.0.0.1}" --port "${PORT:-4200}"
