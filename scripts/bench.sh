#!/usr/bin/env bash
# Benchmarks (not tests). Prints each figure next to the physical limit and
# peers measured in the same run on the same file. Record results in
# docs/PERFORMANCE.md.
#
#   scripts/bench.sh [SIZE_MIB]      (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-2048}
WORK=$(mktemp -d /tmp/imgapi-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --bin imgapi >/dev/null 2>&1
BIN=$PWD/target/release/imgapi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mibps() { awk -v s="$SIZE_MIB" -v t="$1" 'BEGIN { printf "%.1f", s / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

start_server() {
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    URL=$(sed -n 's/^imgapi listening on //p' "$WORK/server.out")
    [ -n "$URL" ] && return
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$WORK/server.err" >&2; exit 1
}

echo "== setup: ${SIZE_MIB} MiB random file"
FILE=$WORK/image.bin
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$FILE"
sync

echo "== physical limits and peers (same file, same run)"
t0=$(now); md5sum "$FILE" > /dev/null; t1=$(now); MD5_S=$(secs "$t0" "$t1")
t0=$(now); sha1sum "$FILE" > /dev/null; t1=$(now); SHA1_S=$(secs "$t0" "$t1")
t0=$(now); cp "$FILE" "$WORK/copy.bin"; sync; t1=$(now); CP_S=$(secs "$t0" "$t1"); rm -f "$WORK/copy.bin"
echo "md5sum:       $(mibps "$MD5_S") MiB/s"
echo "sha1sum:      $(mibps "$SHA1_S") MiB/s"
echo "cp + sync:    $(mibps "$CP_S") MiB/s"

echo "== AddImageFile: PUT ${SIZE_MIB} MiB in one request (curl), sha1+md5+size while streaming, fsync"
start_server
UUID=$(curl -sf -XPOST "$URL/images" -H 'content-type: application/json' \
  -d '{"name":"bench","version":"1.0.0","os":"linux","type":"other","owner":"ba28f844-8cb4-f141-882d-46d6251e6a9f"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
IDLE_RSS=$(hwm_mib "$SERVER_PID")
t0=$(now)
curl -sf -XPUT -T "$FILE" -H 'content-type: application/octet-stream' "$URL/images/$UUID/file?compression=none" > "$WORK/put.json"
t1=$(now); PUT_S=$(secs "$t0" "$t1")
python3 - "$WORK/put.json" <<'PY'
import json, sys
img = json.load(open(sys.argv[1]))
assert img["files"][0]["size"] > 0, img
PY
PEAK_RSS=$(hwm_mib "$SERVER_PID")
echo "AddImageFile: $(mibps "$PUT_S") MiB/s  = $(ratio "$MD5_S" "$PUT_S") x md5sum, $(ratio "$CP_S" "$PUT_S") x cp+sync"
echo "server peak RSS: ${PEAK_RSS} MiB (idle ${IDLE_RSS} MiB; goal < 100 MiB for a 2 GiB file)"

echo "== GetImageFile: download ${SIZE_MIB} MiB (curl)"
t0=$(now)
curl -sf "$URL/images/$UUID/file" -o /dev/null
t1=$(now); GET_S=$(secs "$t0" "$t1")
echo "GetImageFile: $(mibps "$GET_S") MiB/s; server peak RSS now $(hwm_mib "$SERVER_PID") MiB"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
