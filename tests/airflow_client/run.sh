#!/usr/bin/env bash
# Starts `weir standalone` on a fresh SQLite file and drives it from Python:
# the official apache-airflow-client end to end, then schemathesis fuzzing
# every operation of /api/v2/openapi.json (no 5xx, no schema violations).
# Usage: tests/airflow_client/run.sh PATH_TO_WEIR_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
weir=$(realpath "$1")
venv=${WEIR_PY_VENV:-/var/tmp/weir-py-venv}
fuzz_examples=${WEIR_FUZZ_EXAMPLES:-25}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

start_server() {
  local name=$1
  mkdir -p "$work/$name"
  (cd "$work/$name" && WEIR_DATABASE_URL="sqlite://$work/$name/weir.db" WEIR_CORE_DAGS_FOLDER="$here/dags" \
    exec "$weir" standalone --bind 127.0.0.1:0 >"$work/$name/out.log" 2>"$work/$name/err.log") &
  server=$!
  local deadline=$((SECONDS + 60))
  until grep -q 'listening on http://' "$work/$name/err.log" 2>/dev/null; do
    if ((SECONDS > deadline)) || ! kill -0 "$server" 2>/dev/null; then
      cat "$work/$name/err.log" >&2
      echo "weir standalone did not start" >&2
      exit 1
    fi
    sleep 0.2
  done
  host=$(grep -o 'listening on http://[0-9.:]*' "$work/$name/err.log" | head -1 | sed 's/listening on //')
  password=$(sed -n 's/^    \([A-Za-z0-9]\{20\}\)$/\1/p' "$work/$name/out.log" | head -1)
}

stop_server() {
  kill "$server"
  wait "$server" || true
  server=""
  if grep -q 'panicked' "$1"; then
    echo "the server panicked:" >&2
    grep -B2 -A5 'panicked' "$1" >&2
    exit 1
  fi
}

echo "== the official Airflow client"
start_server client
"$venv/bin/python" "$here/client_check.py" "$host" admin "$password" "$work/client"
stop_server "$work/client/err.log"

echo "== schemathesis over the OpenAPI document"
start_server fuzz
token=$("$venv/bin/python" - "$host" "$password" <<'PY'
import json, sys, urllib.request
host, password = sys.argv[1:3]
req = urllib.request.Request(f"{host}/auth/token", method="POST",
    data=json.dumps({"username": "admin", "password": password}).encode(),
    headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["access_token"])
PY
)
# `…/wait` answers when a run ends: on the runs the fuzzer itself triggers
# (queued behind one another) it would hold the fuzzer for minutes. The
# client check above and the API tests cover it.
(cd "$work" && timeout 600 "$venv/bin/schemathesis" run "$host/api/v2/openapi.json" --url "$host" \
  --header "Authorization: Bearer $token" --exclude-path-regex '/wait$' \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "$fuzz_examples" --seed 1 --no-color)
stop_server "$work/fuzz/err.log"
echo "Airflow client and fuzzing checks passed"
