#!/usr/bin/env bash
# Run the whole test suite: unit tests, HTTP tests against the real binary,
# and the real Triton Node.js client (sdc-clients) against the server.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is required ($2)" >&2; exit 1; }; }
need cargo "the Rust toolchain"
need node "Node.js runs the sdc-clients conformance test"
need npm "npm installs sdc-clients"

# The Node.js client the IMGAPI wire tests drive.
if [ ! -d tests/node/node_modules/sdc-clients ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --release --bin imgapi
cargo test --no-fail-fast "$@"
