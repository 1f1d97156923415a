#!/usr/bin/env bash
# The whole test suite on both databases (SpatiaLite and PostGIS), after all set-up; lint and types first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/postgres.sh
scripts/redis.sh
export RAILSEA_TEST_POSTGRES_URL=${RAILSEA_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/railsea_test}
export RAILSEA_TEST_REDIS_URL=${RAILSEA_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
export RAILSEA_REQUIRE_ALL_BACKENDS=1
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest (SpatiaLite and PostGIS at ${RAILSEA_TEST_POSTGRES_URL%%\?*})"
.venv/bin/python -m pytest "$@"
