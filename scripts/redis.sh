#!/usr/bin/env bash
# Makes sure a Redis answers at $RAILSEA_TEST_REDIS_URL (default 127.0.0.1:6379): reuses one, or starts one.
set -euo pipefail
url=${RAILSEA_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$hostport" ] && port=6379
if ! redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then
  echo "==> starting Redis on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no --dir /tmp \
    --logfile /tmp/railsea-redis.log
  for _ in $(seq 1 20); do redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h "$host" -p "$port" ping >/dev/null
