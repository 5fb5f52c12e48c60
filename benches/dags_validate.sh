#!/usr/bin/env bash
# Generates N DAG files of T tasks each (shell, extract, validate, transform and
# load tasks with dataset edges and explicit dependencies) and times
# `weir dags validate` over them.
#
#   benches/dags_validate.sh [FILES] [TASKS]     (default 1000 files, 20 tasks)
set -euo pipefail
files=${1:-1000}
tasks=${2:-20}
weir=${WEIR_BIN:-target/release/weir}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

for ((f = 0; f < files; f++)); do
  {
    echo "dag: bench_$f"
    echo "schedule: \"*/15 * * * *\""
    echo "timezone: Europe/London"
    echo "start_date: 2026-01-01"
    echo "defaults: {retries: 2, retry_delay: 30s, retry_backoff: exponential}"
    echo "tasks:"
    echo "  extract:"
    echo "    kind: extract"
    echo "    source: {path: \"data/{{ ds }}/*.csv\"}"
    echo "    output: raw.d${f}"
    echo "  validate:"
    echo "    kind: validate"
    echo "    input: raw.d${f}"
    echo "    contract:"
    echo "      columns:"
    echo "        id: {type: int64, required: true}"
    echo "        amount: {type: \"decimal(12,2)\", min: 0}"
    echo "        email: {type: string, format: email}"
    echo "      primary_key: [id]"
    echo "      checks:"
    echo "        - rule: \"amount >= 0\""
    echo "        - row_count: {min: 1}"
    echo "    output: clean.d${f}"
    echo "  transform:"
    echo "    kind: transform"
    echo "    inputs: [clean.d${f}]"
    echo "    sql: select id, sum(amount) as total from clean.d${f} group by id"
    echo "    output: curated.d${f}"
    echo "  load:"
    echo "    kind: load"
    echo "    input: curated.d${f}"
    echo "    target: {path: \"out/d${f}_{{ ds_nodash }}.parquet\"}"
    for ((t = 4; t < tasks; t++)); do
      echo "  step_$t:"
      echo "    kind: shell"
      echo "    command: echo \"{{ run_id }} $t\""
      if ((t > 4)); then echo "    depends_on: [step_$((t - 1)), load]"; else echo "    depends_on: [load]"; fi
    done
  } > "$dir/dag_$f.yaml"
done

echo "$files files x $tasks tasks"
for run in 1 2 3; do
  start=$(date +%s.%N)
  "$weir" dags validate --dags-folder "$dir" 2>/dev/null
  end=$(date +%s.%N)
  echo "run $run: weir dags validate took $(echo "$end - $start" | bc -l | cut -c1-5) s"
done
