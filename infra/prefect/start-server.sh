#!/usr/bin/env bash
# A Prefect 3 server: the UI, run history, and what schedules need (`lfsd schedule` serves the inbox
# flow against it). Its database lives under PREFECT_HOME (.lfsd/prefect by default).
# Authentication: PREFECT_SERVER_API_AUTH_STRING=user:password in this script's environment (Prefect reads
# it; never an argument), the same value as PREFECT_API_AUTH_STRING in every client's environment. Without
# it the server only listens on 127.0.0.1; HOST=0.0.0.0 without authentication is refused.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.lfsd/prefect}
export PREFECT_SERVER_ANALYTICS_ENABLED=false
HOST=${HOST:-127.0.0.1}
if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ] && [ "$HOST" != 127.0.0.1 ] && [ "$HOST" != localhost ]; then
  echo "refused: HOST=$HOST without authentication; set PREFECT_SERVER_API_AUTH_STRING=user:password" >&2
  exit 2
fi
echo "then: export PREFECT_API_URL=http://$HOST:${PORT:-4200}/api" \
  "${PREFECT_SERVER_API_AUTH_STRING:+and PREFECT_API_AUTH_STRING (the same user:password)}"
exec .venv/bin/prefect server start --host "$HOST" --port "${PORT:-4200}"
