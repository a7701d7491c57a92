#!/usr/bin/env bash
# A 3-node Garage cluster (replication factor 3) on loopback, to run the S3
# tests and the upload/register flow against a real distributed store.
# Not part of CI: Garage takes ~20 minutes to build; it is built once into
# target/tools and reused.
#
#   scripts/garage-cluster.sh start       build if needed, start 3 nodes, make a key;
#                                         prints the IMGAPI_TEST_S3_* exports
#   scripts/garage-cluster.sh stop-node N stop node N (1..3): the cluster stays writable
#   scripts/garage-cluster.sh stop        stop all nodes
#   scripts/garage-cluster.sh test        start, run the S3 tests, stop node 3, run them again
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/tools/bin/garage
BASE=${GARAGE_BASE:-/tmp/imgapi-garage}
SECRET=$(printf 'imgapi-garage-test-rpc-secret-0123456789abcdef0123456789abcdef' | sha256sum | cut -c1-64)

build() {
  if [ ! -x "$BIN" ]; then
    echo "building garage 2.5.0 (once; about 20 minutes)..." >&2
    cargo install --locked garage@2.5.0 --root target/tools >&2
  fi
}

conf() { echo "$BASE/n$1/garage.toml"; }
g() { "$BIN" -c "$(conf 1)" "$@"; }

start() {
  build
  for n in 1 2 3; do
    d=$BASE/n$n
    mkdir -p "$d/meta" "$d/data"
    cat > "$(conf $n)" <<TOML
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$((3900 + n * 10 + 1))"
rpc_public_addr = "127.0.0.1:$((3900 + n * 10 + 1))"
rpc_secret = "$SECRET"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$((3900 + n * 10))"
root_domain = ".s3.garage.localhost"
TOML
    if [ ! -f "$d/pid" ] || ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
      "$BIN" -c "$(conf $n)" server > "$d/log" 2>&1 &
      echo $! > "$d/pid"
    fi
  done
  for _ in $(seq 100); do g status > /dev/null 2>&1 && break; sleep 0.2; done
  for n in 2 3; do
    id=$("$BIN" -c "$(conf $n)" node id -q 2>/dev/null)
    g node connect "$id" > /dev/null
  done
  if ! g layout show 2>/dev/null | grep -q "dc1"; then
    for n in 1 2 3; do
      id=$("$BIN" -c "$(conf $n)" node id -q 2>/dev/null | cut -d@ -f1)
      g layout assign -z dc1 -c 1G "$id" > /dev/null
    done
    g layout apply --version 1 > /dev/null
  fi
  if ! g key info imgapi-test > /dev/null 2>&1; then
    g key create imgapi-test > /dev/null
  fi
  g key allow --create-bucket imgapi-test > /dev/null
  info=$(g key info --show-secret imgapi-test)
  key=$(echo "$info" | awk -F': *' '/Key ID/ {print $2; exit}')
  secret=$(echo "$info" | awk -F': *' '/Secret key/ {print $2; exit}')
  echo "export IMGAPI_TEST_S3_ENDPOINT=http://127.0.0.1:3910"
  echo "export IMGAPI_TEST_S3_ACCESS_KEY=$key"
  echo "export IMGAPI_TEST_S3_SECRET_KEY=$secret"
}

stop_node() {
  local d=$BASE/n$1
  [ -f "$d/pid" ] && kill "$(cat "$d/pid")" 2>/dev/null || true
  rm -f "$d/pid"
}

case "${1:-}" in
  start) start ;;
  stop-node) stop_node "$2" ;;
  stop) for n in 1 2 3; do stop_node $n; done ;;
  test)
    eval "$(start)"
    cargo test --test suite s3::
    stop_node 3
    echo "== node 3 stopped: the same tests again" >&2
    cargo test --test suite s3::
    "$0" stop ;;
  *) echo "usage: $0 start | stop-node N | stop | test" >&2; exit 2 ;;
esac
