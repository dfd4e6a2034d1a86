#!/usr/bin/env bash
# How throughput on one PostgreSQL server grows with workers (issue #7, the national
# plan in docs/scale.md): runs WORKERS `disburse bench` processes at once, each on a
# fresh database of its own on the same server, and prints each one's stage total and
# the time from the start of all to the end of the last. Compare with one worker doing
# WORKERS x HOUSEHOLDS alone. Separate databases leave out what a shared one adds (one
# set of indexes, the advisory locks), so this is an upper bound for today's code.
#
#   scripts/pg_workers_bench.sh [WORKERS] [HOUSEHOLDS]   (defaults 2 and 1000000)
#
# Needs a release build (`cargo build --release`) and the server at PGHOST (default
# 127.0.0.1:5432, user postgres). The databases are dropped afterwards.
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
cd "$(dirname "$0")/.."

workers=${1:-2}
households=${2:-1000000}
host=${PGHOST:-127.0.0.1}
binary=target/release/disburse
out=$(mktemp -d)
[ -x "$binary" ] || { echo "build first: cargo build --release" >&2; exit 2; }

databases=()
for n in $(seq 1 "$workers"); do databases+=("disburse_workers_bench_$n"); done
drop_databases() {
  for database in "${databases[@]}"; do
    psql -h "$host" -U postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" postgres
  done
}
trap drop_databases EXIT
drop_databases
for database in "${databases[@]}"; do
  psql -h "$host" -U postgres -qc "CREATE DATABASE $database" postgres
done

start=$(date +%s.%N)
pids=()
for database in "${databases[@]}"; do
  "$binary" bench --households "$households" \
    --db "postgres://postgres@$host:5432/$database" --out "$out/$database" \
    >"$out/$database.txt" 2>/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
end=$(date +%s.%N)

for database in "${databases[@]}"; do
  echo "$database: $(grep 'total (our stages)' "$out/$database.txt" | awk '{print $(NF)}') s of our stages"
done
echo "$workers workers x $households households: $(echo "$end - $start" | bc) s from the start of all to the end of the last"
rm -rf "$out"
