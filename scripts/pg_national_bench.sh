#!/usr/bin/env bash
# The national month on one shared PostgreSQL database (issue #7, docs/scale.md):
# imports HOUSEHOLDS generated households, plans the month as the roster's seven
# regions (`work plan`), then times WORKERS `disburse work run` processes at once,
# first computing every scope's run, then (after one approver approves each run)
# exporting every run's signed files. Prints each stage's wall time and households
# per second. Run it with WORKERS=1 and WORKERS=2 to see what a second worker gives.
#
#   scripts/pg_national_bench.sh [WORKERS] [HOUSEHOLDS]   (defaults 2 and 1000000)
#
# Needs a release build (`cargo build --release`) and the server at PGHOST (default
# 127.0.0.1:5432, user postgres). The database is dropped afterwards.
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
cd "$(dirname "$0")/.."

workers=${1:-2}
households=${2:-1000000}
host=${PGHOST:-127.0.0.1}
binary=$PWD/target/release/disburse
database=disburse_national_bench
regions=210102,210103,210104,210106,210123,210124,210181
out=$(mktemp -d)
[ -x "$binary" ] || { echo "build first: cargo build --release" >&2; exit 2; }

drop_database() {
  psql -h "$host" -U postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" postgres
  rm -rf "$out"
}
trap drop_database EXIT
psql -h "$host" -U postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" postgres
psql -h "$host" -U postgres -qc "CREATE DATABASE $database" postgres

export DISBURSE_DB="postgres://postgres@$host:5432/$database"
export DISBURSE_LOG=warn
cd "$out"
printf '[approval]\napprovers_required = 1\napprovers_required_above = 1\n' >disburse.toml
disburse() { "$binary" "$@"; }
now() { date +%s.%N; }
report() { # stage start end
  local seconds
  seconds=$(echo "$3 - $2" | bc)
  printf '%-28s %8.2f s %10.0f households/s\n' "$1" "$seconds" "$(echo "$households / $seconds" | bc -l)"
}

disburse bench --roster-only --households "$households" --out . >/dev/null
start=$(now)
disburse import roster roster.csv >/dev/null
report "import roster" "$start" "$(now)"
disburse keys generate --alg ed25519 --out li.pem >/dev/null
disburse keys generate --alg ed25519 --out bank.pem >/dev/null
disburse approver add li --public-key li.pem.pub.pem >/dev/null
start=$(now)
disburse --user planner work plan --month 2026-11 --regions "$regions" >/dev/null
report "plan (shared values)" "$start" "$(now)"

run_workers() { # stage
  local start pids=()
  start=$(now)
  for n in $(seq 1 "$workers"); do
    disburse --user operator work run --out files --key bank.pem --worker "w$n" >"worker-$n.txt" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  report "$1 ($workers workers)" "$start" "$(now)"
  cat worker-*.txt
}

run_workers "compute 7 scopes"
start=$(now)
for run in $(disburse --json work list --month 2026-11 | python3 -c '
import json, sys
for item in json.load(sys.stdin)["items"]:
    print("R202611-%06d" % item["run_no"])'); do
  disburse --user li run approve "$run" --key li.pem >/dev/null
done
report "approve 7 runs" "$start" "$(now)"
run_workers "export 7 scopes"
disburse work list --month 2026-11
