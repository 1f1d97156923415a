#!/usr/bin/env bash
# One benchmark after all set-up: scripts/bench.sh NAME [options], NAME one of routing, http, ingest, stream, memory,
# growth, scaleout (each is `python -m bench.NAME`; `--help` lists its options). Each prints its figures, a baseline
# measured in the same run, and the ratios against the targets of issue 7.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/bench.sh routing|http|ingest|stream|memory|growth|scaleout [options]}
shift
scripts/setup.sh bench
scripts/postgres.sh
scripts/redis.sh
export RAILSEA_BENCH_POSTGRES_URL=${RAILSEA_BENCH_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/railsea_bench}
exec .venv/bin/python -m "bench.$name" "$@"
