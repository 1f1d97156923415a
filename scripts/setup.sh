#!/usr/bin/env bash
# Set-up shared by `make run` and `make test` on a fresh Debian machine: system packages, the virtual
# environment with the pinned Python dependencies, and the npm assets the app serves itself.
# Usage: scripts/setup.sh [run|test|bench]   (test also installs PostgreSQL + PostGIS, Redis, chromium; bench also
# pgbouncer, for the scale-out demonstration)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-run}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
need() { for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done; }
need libsqlite3-mod-spatialite python3-venv
# Node.js and npm may come from elsewhere than Debian's packages: only a missing command asks for them.
command -v node >/dev/null 2>&1 || need nodejs
command -v npm >/dev/null 2>&1 || need npm
if [ "$purpose" = test ] || [ "$purpose" = bench ]; then
  pg_major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  if [ -z "$pg_major" ]; then need postgresql; pg_major=15; fi
  need "postgresql-${pg_major}-postgis-3" redis-server
  need chromium # the dashboard's browser tests drive Debian's chromium through Playwright (no `playwright install`)
fi
if [ "$purpose" = bench ]; then need pgbouncer; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
stamp_py=$(cat constraints.txt setup.cfg pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.stamp 2>/dev/null)" != "$stamp_py" ]; then
  echo "==> python dependencies (pinned in constraints.txt)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  echo "$stamp_py" > .venv/.stamp
fi

stamp_npm=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -d node_modules ] || [ "$(cat node_modules/.stamp 2>/dev/null)" != "$stamp_npm" ]; then
  echo "==> npm assets (locked in package-lock.json)"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$stamp_npm" > node_modules/.stamp
fi
