#!/usr/bin/env bash
# Makes sure a PostgreSQL with PostGIS answers at $RAILSEA_TEST_POSTGRES_URL (default postgres@127.0.0.1:5432):
# reuses a running server, starts an installed cluster, or (with the packages from setup.sh) creates one.
set -euo pipefail
url=${RAILSEA_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/railsea_test}
hostport=${url#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$hostport" ] && port=5432

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
ready() { pg_isready -q -h "$host" -p "$port"; }

if ! ready; then
  major=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
    echo "==> creating a PostgreSQL $major cluster"
    as_root pg_createcluster "$major" main --port "$port" >/dev/null
    # A cluster made here for tests trusts loopback connections, like the one the machines come with.
    conf=/etc/postgresql/$major/main/pg_hba.conf
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf"
  fi
  echo "==> starting PostgreSQL $major"
  cluster=$(pg_lsclusters -h | awk 'NR==1{print $1" "$2}')
  as_root pg_ctlcluster --skip-systemctl-redirect $cluster start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL does not answer on $host:$port" >&2; exit 1; }
