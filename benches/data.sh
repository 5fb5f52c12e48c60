#!/usr/bin/env bash
# Data-plane throughput on generated orders with known defects:
#   benches/data.sh target/release/weir 10000000
# needs python3 and PostgreSQL at 127.0.0.1:5432 (user postgres) for the loads.
set -euo pipefail
weir=$(realpath "$1")
rows=${2:-10000000}
here=$(cd "$(dirname "$0")" && pwd)
work=${WEIR_BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work/dags"
cp "$here/data/bench_orders.yaml" "$work/dags/"
if [ ! -f "$work/dags/gen/orders/orders.csv" ]; then
  echo "generating $rows orders"
  python3 "$here/data/generate.py" "$rows" "$work/dags/gen"
fi
du -sh "$work/dags/gen/orders/orders.csv"
psql -h 127.0.0.1 -U postgres -qc 'DROP DATABASE IF EXISTS weir_bench_data WITH (FORCE)' postgres
psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE weir_bench_data' postgres
cd "$work"
WEIR_CONN_BENCH_PG=postgres://postgres@127.0.0.1:5432/weir_bench_data WEIR_CORE_DAGS_FOLDER="$work/dags" \
  /usr/bin/time -v "$weir" dags test bench_orders 2>"$work/time.txt" | tee "$work/timeline.txt"
grep -E 'Maximum resident|Elapsed' "$work/time.txt"
python3 - "$work/timeline.txt" "$rows" <<'PY'
import re, sys
start, end = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)s\s+(\S+)\s+(\S+)", line)
    if not m:
        continue
    t, task, state = float(m[1]), m[2], m[3]
    if state == "running":
        start[task] = t
    elif state in ("success", "failed"):
        end[task] = t
rows = int(sys.argv[2])
for task in ("extract_orders", "validate_orders", "by_hand", "daily", "load_daily", "load_clean"):
    if task in start and task in end:
        s = end[task] - start[task]
        print(f"{task:16} {s:8.2f} s  {rows / s:>12,.0f} rows/s")
PY
