#!/usr/bin/env bash
# Fuzz the HTTP API from its OpenAPI description (docs/openapi.json, served
# at /openapi.json) with schemathesis: a fresh release server on loopback,
# seeded with a few images and an upload, gets a bounded number of generated
# requests per operation (valid and invalid input). Any 5xx other than a
# documented 501 NotAvailable, a response that breaks the document, a
# dropped connection or a server panic fails the run.
#
# Env: FUZZ_EXAMPLES (per operation and phase, default 50), FUZZ_SEED
# (default fixed, so CI is reproducible; FUZZ_SEED=random for a new one).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "fuzz.sh: $1 is required ($2)" >&2; exit 1; }; }
need python3 "Python runs schemathesis"
need cargo "the Rust toolchain builds the server"

VENV=target/fuzz-venv
if ! cmp -s tests/fuzz/requirements.txt "$VENV/imgapi-requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
  cp tests/fuzz/requirements.txt "$VENV/imgapi-requirements.txt"
fi

cargo build --release --bin imgapi

TMP=$(mktemp -d /tmp/imgapi-fuzz.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

IMGAPI_LOG=warn target/release/imgapi serve --listen 127.0.0.1:0 --data-dir "$TMP/data" \
  >"$TMP/stdout" 2>"$TMP/server.log" &
PID=$!
URL=
for _ in $(seq 1 300); do
  URL=$(sed -n 's/^imgapi listening on //p' "$TMP/stdout" | head -n 1)
  [ -n "$URL" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$URL" ]; then
  echo "fuzz.sh: the server did not start" >&2
  cat "$TMP/server.log" >&2
  exit 1
fi
echo "fuzz.sh: server at $URL"

"$VENV/bin/python" tests/fuzz/seed.py "$URL"

SEED=${FUZZ_SEED:-20251127}
SEED_ARGS=(--seed "$SEED")
[ "$SEED" = random ] && SEED_ARGS=()
REPORT="$TMP/junit.xml"
# One worker: hypothesis' lambda descriptions race in CPython 3.11's
# ast.parse when several threads generate at once.
set +e
SCHEMATHESIS_HOOKS=tests/fuzz/hooks.py timeout 600 \
  "$VENV/bin/schemathesis" --config-file tests/fuzz/schemathesis.toml run "$URL/openapi.json" \
  --url "$URL" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${FUZZ_EXAMPLES:-50}" \
  --workers 1 \
  --request-timeout 30 \
  --generation-database none \
  --no-color \
  --report junit --report-junit-path "$REPORT" \
  "${SEED_ARGS[@]}"
RC=$?
set -e

# The server must have survived, still answer, and never have panicked.
if ! kill -0 "$PID" 2>/dev/null; then
  echo "fuzz.sh: the server died during the run" >&2
  RC=1
elif ! "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/ping", timeout=10)' "$URL"; then
  echo "fuzz.sh: the server no longer answers /ping" >&2
  RC=1
fi
if grep -q "panicked" "$TMP/server.log"; then
  echo "fuzz.sh: the server panicked:" >&2
  grep -A5 "panicked" "$TMP/server.log" >&2
  RC=1
fi
if [ "$RC" -ne 0 ]; then
  echo "fuzz.sh: server log (last 50 lines):" >&2
  tail -n 50 "$TMP/server.log" >&2
fi

# Plain summary: operations without / with a failure or error.
SUMMARY=$("$VENV/bin/python" - "$REPORT" "$RC" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError):
    cases = []
bad = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
if sys.argv[2] != "0" and bad == 0:
    bad = 1  # the run failed outside any one operation
print(f"{len(cases) - bad} passed, {bad} failed")
EOF
)
echo "fuzz: $SUMMARY"
exit "$RC"
