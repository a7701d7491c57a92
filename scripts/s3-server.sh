#!/usr/bin/env bash
# A real S3-compatible server on loopback for the tests: s3s-fs from
# crates.io, built once and cached under target/tools.
#
#   scripts/s3-server.sh install          build s3s-fs if missing
#   scripts/s3-server.sh start DIR PORT   start it in the background, print its pid
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/tools/bin/s3s-fs
ACCESS_KEY=${IMGAPI_TEST_S3_ACCESS_KEY:-imgapi-test}
SECRET_KEY=${IMGAPI_TEST_S3_SECRET_KEY:-imgapi-test-secret}

install() {
  if [ ! -x "$BIN" ]; then
    echo "building s3s-fs (once; about 3 minutes)..." >&2
    cargo install --locked s3s-fs@0.14.1 --features binary --root target/tools >&2
  fi
}

case "${1:-}" in
  install) install ;;
  start)
    install
    dir=$2; port=$3
    mkdir -p "$dir"
    "$BIN" --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$dir" \
      > "$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$pid"; exit 0; fi
      sleep 0.1
    done
    echo "s3s-fs did not start; see $dir.log" >&2; exit 1 ;;
  *) echo "usage: $0 install | start DIR PORT" >&2; exit 2 ;;
esac
