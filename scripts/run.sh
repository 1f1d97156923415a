#!/usr/bin/env bash
# Runs RailSea on http://127.0.0.1:8000 on the embedded SpatiaLite database, after all set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
mkdir -p instance
if [ -z "${RAILSEA_ADMIN_TOKEN:-}" ]; then
  # A local admin token, kept across runs so scripts and the dashboard keep working.
  [ -s instance/admin-token ] || .venv/bin/python -c 'import secrets; print("rs_admin_" + secrets.token_urlsafe(24))' > instance/admin-token
  RAILSEA_ADMIN_TOKEN=$(cat instance/admin-token)
  export RAILSEA_ADMIN_TOKEN
fi
.venv/bin/railsea init
.venv/bin/railsea demo
echo "==> admin token: $RAILSEA_ADMIN_TOKEN   (also in instance/admin-token)"
echo "==> serving on http://127.0.0.1:8000  (dashboard: /, API docs: /api/docs); scheduler running beside it"
.venv/bin/railsea scheduler &
scheduler=$!
trap 'kill $scheduler 2>/dev/null' EXIT INT TERM
.venv/bin/railsea serve --host 127.0.0.1 --port 8000
