#!/usr/bin/env bash
# Remote workers: a fanout of N no-op tasks (`true`; 1 → N → 1) run by W
# `weir worker` processes of 16 slots each, all talking HTTP to one
# `weir api`, with one `weir scheduler`, on a fresh PostgreSQL database.
# Reports completions per second (first start to last end) and the claim
# latency of the fan (queued → running) at p50 and p99, from the recorded
# timestamps.
# Usage: benches/remote.sh PATH_TO_WEIR ADMIN_DATABASE_URL [TASKS] [WORKERS…]
#   e.g. benches/remote.sh target/release/weir postgres://postgres@127.0.0.1:5432/postgres 1000 1 2 4
set -euo pipefail
weir=$(realpath "$1")
admin=$2
tasks=${3:-1000}
shift 3 || true
counts=("${@:-1 2 4}")
[ ${#counts[@]} -eq 1 ] && read -r -a counts <<<"${counts[0]}"
server=${admin%/*}
printf '%-8s %6s %10s %14s %12s %12s\n' workers tasks total "completions/s" "claim p50" "claim p99"
for n in "${counts[@]}"; do
  work=$(mktemp -d)
  db="weir_remote_bench_$$_$n"
  psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
  url="$server/$db"
  mkdir -p "$work/dags"
  {
    echo "dag: fan"; echo "schedule: manual"; echo "max_active_tasks: 100000"; echo "tasks:"
    echo "  start: {kind: shell, command: 'true'}"
    for i in $(seq 1 "$tasks"); do echo "  f$i: {kind: shell, command: 'true', depends_on: [start]}"; done
    printf '  end: {kind: shell, command: "true", depends_on: ['
    for i in $(seq 1 "$tasks"); do printf 'f%s' "$i"; [ "$i" -lt "$tasks" ] && printf ', '; done
    echo ']}'
  } >"$work/dags/fan.yaml"
  printf '[core]\ndags_folder = "%s/dags"\nlogs_dir = "%s/logs"\ndata_dir = "%s/data"\n[database]\nurl = "%s"\n[pools.default]\nslots = 100000\n' \
    "$work" "$work" "$work" "$url" >"$work/weir.toml"
  pids=()
  cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; psql "$admin" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  cd "$work"
  "$weir" --config weir.toml scheduler 2>scheduler.log & pids+=($!)
  "$weir" --config weir.toml api --bind 127.0.0.1:0 2>api.log & pids+=($!)
  until grep -q 'listening on http://' api.log 2>/dev/null; do sleep 0.1; done
  api=$(grep -o 'http://127.0.0.1:[0-9]*' api.log | head -1)
  token=$("$weir" --config weir.toml tokens create --role worker 2>/dev/null | grep "^weir_")
  for w in $(seq 1 "$n"); do
    WEIR_LOG=info "$weir" --config weir.toml worker --server "$api" --token "$token" --slots 16 --name "w$w" 2>"w$w.log" & pids+=($!)
  done
  until [ "$(grep -l 'claiming work' w*.log 2>/dev/null | wc -l)" -eq "$n" ]; do sleep 0.1; done
  "$weir" --config weir.toml dags trigger fan >/dev/null
  until psql "$url" -Atc "SELECT state FROM dag_runs" | grep -qE 'success|failed'; do sleep 0.2; done
  psql "$url" -At -F ' ' -c "
    WITH fan AS (SELECT EXTRACT(EPOCH FROM start_date - queued_at) AS wait, start_date, end_date
                 FROM task_instances WHERE task_id LIKE 'f%')
    SELECT (SELECT state FROM dag_runs),
           EXTRACT(EPOCH FROM MAX(end_date) - MIN(start_date)),
           COUNT(*) / EXTRACT(EPOCH FROM MAX(end_date) - MIN(start_date)),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) * 1000,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY wait) * 1000
    FROM fan" | while read -r state total rate p50 p99; do
      [ "$state" = success ] || { echo "the run ended $state" >&2; exit 1; }
      printf '%-8s %6s %9.2fs %14.0f %10.1f ms %9.1f ms\n' "$n" "$tasks" "$total" "$rate" "$p50" "$p99"
    done
  cd - >/dev/null
  cleanup
  trap - EXIT
done
