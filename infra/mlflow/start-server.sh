#!/usr/bin/env bash
# MLflow tracking server with the model registry and an artifact proxy (clients upload through it).
#   BACKEND  sqlite (default, under .lfsd/mlflow-server) or e.g. postgresql://user:pw@db/mlflow: handed to
#            MLflow as MLFLOW_BACKEND_STORE_URI (its own variable), never on the command line, where every
#            local user could read the password (`ps`)
#   ARTIFACTS  a folder (default) or s3://bucket/prefix (needs boto3 and AWS credentials in AWS_* variables)
# Authentication (MLflow's basic-auth app; needs `pip install -c constraints.txt flask-wtf`): on when
# MLFLOW_AUTH_ADMIN_PASSWORD is set (the admin created on the first start; also MLFLOW_FLASK_SERVER_SECRET_KEY,
# which this script makes and keeps in the state folder when unset). Without it the server only listens on
# 127.0.0.1; HOST=0.0.0.0 without authentication is refused. Clients: MLFLOW_TRACKING_USERNAME and
# MLFLOW_TRACKING_PASSWORD in their environment, never in MLFLOW_TRACKING_URI.
# One worker and no job execution: ~0.5 GB and ready in ~12 s instead of 13 processes / 2.6 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=${STATE:-.lfsd/mlflow-server}
HOST=${HOST:-127.0.0.1}
mkdir -p "$STATE"
chmod 700 "$STATE"
export MLFLOW_BACKEND_STORE_URI=${BACKEND:-${MLFLOW_BACKEND_STORE_URI:-sqlite:///$PWD/$STATE/mlflow.db}}
ARTIFACTS=${ARTIFACTS:-$PWD/$STATE/artifacts}
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
AUTH=()
if [ -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
  export MLFLOW_AUTH_ADMIN_USERNAME=${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
  if [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then  # users and permissions in a sqlite file beside the state
    export MLFLOW_AUTH_CONFIG_PATH=$PWD/$STATE/basic_auth.ini
    printf '[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///%s\nadmin_username = %s\n' \
      "$PWD/$STATE/basic_auth.db" "$MLFLOW_AUTH_ADMIN_USERNAME" > "$MLFLOW_AUTH_CONFIG_PATH"
  fi
  if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
    [ -s "$STATE/secret_key" ] || (umask 077; .venv/bin/python -c "import secrets; print(secrets.token_hex(32))" > "$STATE/secret_key")
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$STATE/secret_key")
    export MLFLOW_FLASK_SERVER_SECRET_KEY
  fi
  AUTH=(--app-name basic-auth)
elif [ "$HOST" != 127.0.0.1 ] && [ "$HOST" != localhost ]; then
  echo "refused: HOST=$HOST without authentication; set MLFLOW_AUTH_ADMIN_PASSWORD (see docs/operations.md, Security model)" >&2
  exit 2
fi
exec .venv/bin/mlflow server --host "$HOST" --port "${PORT:-5000}" --workers "${WORKERS:-1}" \
  --artifacts-destination "$ARTIFACTS" "${AUTH[@]}"
