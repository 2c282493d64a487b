#!/usr/bin/env bash
# A Ray head on this machine; workers join with `ray start --address=HEAD:6379`. Then run lfsd with
# RAY_ADDRESS=HEAD:6379 and set ray.num_workers / ray.use_gpu in params.yaml. Checkpoints are written
# by rank 0 to the workspace path: on several nodes that path must be shared storage (NFS) or the
# driver's node must host rank 0 (see docs/ray.md).
set -euo pipefail
TEMP=${RAY_TEMP:-/tmp/ray-lfsd}
exec "$(dirname "$0")/../../.venv/bin/ray" start --head --node-ip-address "${HOST:-127.0.0.1}" --port "${PORT:-6379}" \
  --temp-dir "$TEMP" --include-dashboard=false --disable-usage-stats --block
