#!/usr/bin/env bash
# Entry point of the `lfsd` service in infra/compose.yaml (and of `docker compose run lfsd ...`).
#  1. RAY_ADDRESS set: join that Ray cluster as a node with no CPUs. A Ray driver must run on a node of
#     its cluster; with 0 CPUs no training task is placed here, it runs on the ray-worker nodes.
#  2. No workspace at $LFSD_WORKSPACE yet: create one (git + DVC, the image's models/base and
#     models/evaluator, one commit) and, with DVC_REMOTE_URL, make that S3 URL its DVC remote (endpoint
#     $MLFLOW_S3_ENDPOINT_URL, credentials from AWS_*), committed in .dvc/config.
#  3. exec the command (default: `lfsd schedule`).
set -euo pipefail

: "${LFSD_WORKSPACE:?LFSD_WORKSPACE must name the workspace folder (on the volume every Ray node mounts)}"

if [[ -n "${RAY_ADDRESS:-}" ]]; then
  ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats
fi

if [[ ! -d "$LFSD_WORKSPACE/.git" ]]; then
  python - <<'PY'
import os
from pathlib import Path

from components.workspace.layout import init_workspace

init_workspace(Path(os.environ["LFSD_WORKSPACE"]))
PY
  if [[ -n "${DVC_REMOTE_URL:-}" ]]; then
    (
      cd "$LFSD_WORKSPACE"
      export DVC_SITE_CACHE_DIR="${LFSD_STATE_DIR:-$LFSD_WORKSPACE/.lfsd}/dvc-site-cache"
      dvc remote add -d shared "$DVC_REMOTE_URL"
      dvc remote modify shared endpointurl "${MLFLOW_S3_ENDPOINT_URL:?the S3 endpoint of the DVC remote}"
      dvc remote remove --local local
      git add .dvc/config
      git commit -q -m "dvc: shared remote $DVC_REMOTE_URL"
    )
  fi
fi

exec "$@"
