#!/usr/bin/env bash
# Make URL the default DVC remote for concept datasets and checkpoints, committed in .dvc/config so
# every clone pushes/pulls there (the local default lives in the git-ignored .dvc/config.local).
#   infra/dvc/set-remote.sh s3://bucket/lfsd        (needs `pip install dvc-s3`)
#   infra/dvc/set-remote.sh ssh://host/srv/lfsd     (needs `pip install dvc-ssh`)
#   infra/dvc/set-remote.sh /mnt/shared/lfsd-remote
set -euo pipefail
cd "$(dirname "$0")/../.."
URL=${1:?usage: set-remote.sh URL}
case "$URL" in  # .dvc/config is committed: a password in the URL would be in git for good
  *://*:*@*) echo "refused: the URL holds a password; give the remote's credentials to DVC in the environment" \
    "(AWS_* for S3) or with \`dvc remote modify --local shared password ...\`" >&2; exit 2 ;;
esac
.venv/bin/dvc remote add -f -d shared "$URL"
.venv/bin/dvc remote remove --local local 2>/dev/null || true
.venv/bin/dvc push
echo "remote 'shared' -> $URL; commit .dvc/config"
