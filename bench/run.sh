#!/usr/bin/env bash
# run.sh - pgrotate vs PgBouncer vs direct PostgreSQL, side by side (DESIGN.md §6).
#
#   bash bench/run.sh            # full matrix, -T 10s, 16/64/256 clients (~20 min)
#   bash bench/run.sh -quick     # smoke run: -T 3s, 16 clients (~2 min)
#   bash bench/run.sh -h         # every flag (workloads, protocols, modes, clients, …)
#
# Builds pgrotate and bench/cmd/benchrun into a temporary directory, installs
# PgBouncer with apt-get when it is missing, and runs benchrun, which starts a
# throwaway PostgreSQL cluster, PgBouncer and pgrotate, runs pgbench against
# all three, prints one markdown table and writes it to bench/results/.
# Set PGROTATE_BIN to benchmark an already built pgrotate binary instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

# as_root runs a command as root, with sudo when we are not root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have_pgbouncer() {
  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

if ! have_pgbouncer; then
  echo "installing pgbouncer with apt-get …" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
if ! command -v pgbench >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
  echo "pgbench not found: install the PostgreSQL server package (Debian: postgresql)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgrotate-bench-build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$root"
pgrotate_bin=${PGROTATE_BIN:-}
if [ -z "$pgrotate_bin" ]; then
  echo "building pgrotate …" >&2
  go build -o "$tmp/pgrotate" ./cmd/pgrotate
  pgrotate_bin=$tmp/pgrotate
fi
go build -o "$tmp/benchrun" ./bench/cmd/benchrun

revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null | head -1)" ]; then
  revision="$revision (with uncommitted changes)"
fi
if [ -n "${PGROTATE_BIN:-}" ]; then
  revision="prebuilt $PGROTATE_BIN"
fi

"$tmp/benchrun" -pgrotate "$pgrotate_bin" -results "$root/bench/results" -revision "$revision" "$@"
