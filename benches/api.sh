#!/usr/bin/env bash
# Requests per second and latency of the REST API under 100 concurrent
# connections on loopback, measured with wrk against `weir standalone`:
#   GET  /api/v2/dags/~/dagRuns?limit=100   (with 1,000+ runs stored)
#   POST /api/v2/dags/bench_api/dagRuns    (each creates a run that executes)
# Usage: benches/api.sh PATH_TO_WEIR [DATABASE_URL]   (default: a fresh SQLite file)
set -euo pipefail
weir=$(realpath "$1")
work=$(mktemp -d)
db=${2:-sqlite://$work/weir.db}
mkdir -p "$work/dags"
cat >"$work/dags/bench_api.yaml" <<'YAML'
dag: bench_api
schedule: manual
tasks:
  noop:
    kind: shell
    command: "true"
YAML
(cd "$work" && WEIR_DATABASE_URL="$db" WEIR_CORE_DAGS_FOLDER="$work/dags" \
  exec "$weir" standalone --bind 127.0.0.1:0 >"$work/out.log" 2>"$work/err.log") &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until grep -q 'listening on http://' "$work/err.log" 2>/dev/null; do
  if ! kill -0 "$server" 2>/dev/null; then cat "$work/err.log" >&2; exit 1; fi
  sleep 0.2
done
host=$(grep -o 'listening on http://[0-9.:]*' "$work/err.log" | head -1 | sed 's/listening on //')
password=$(sed -n 's/^    \([A-Za-z0-9]\{20\}\)$/\1/p' "$work/out.log" | head -1)
if [ -z "$password" ]; then
  echo "use an empty database: the admin password is printed only on first start" >&2
  exit 1
fi
token=$(curl -sf -X POST "$host/auth/token" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

cat >"$work/trigger.lua" <<LUA
local counter = 0
local id = 0
setup = function(thread) id = id + 1; thread:set("tid", id) end
request = function()
  counter = counter + 1
  local body = string.format('{"dag_run_id": "bench_%d_%d", "conf": {"n": %d}}', tid, counter, counter)
  return wrk.format("POST", "/api/v2/dags/bench_api/dagRuns",
    {["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json"}, body)
end
LUA
echo "== POST /api/v2/dags/bench_api/dagRuns (trigger), 100 connections, 15 s"
wrk -t2 -c100 -d15s --latency -s "$work/trigger.lua" "$host" | grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|requests in'
echo "== GET /api/v2/dags/~/dagRuns?limit=100, 100 connections, 15 s"
curl -sf "$host/api/v2/dags/~/dagRuns?limit=1" -H "Authorization: Bearer $token" | grep -o '"total_entries":[0-9]*'
wrk -t2 -c100 -d15s --latency -H "Authorization: Bearer $token" "$host/api/v2/dags/~/dagRuns?limit=100" |
  grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx|requests in'
