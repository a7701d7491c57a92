#!/usr/bin/env bash
# Benchmarks (not tests). Prints each figure next to the physical limit and
# peers measured in the same run on the same file. Record results in
# docs/PERFORMANCE.md.
#
#   scripts/bench.sh [SIZE_MIB] [TUS_MIB]   (defaults 2048 and 1024)
#   scripts/bench.sh list                   (only the ListImages section)
#   scripts/bench.sh client                 (only the client verbs: CLIENT_MIB, CLIENT_ROUNDS)
#   scripts/bench.sh parallel               (only tus parallel vs single-stream uploads through a
#                                            WAN proxy: BENCH_MIB, WAN_RTT_MS, WAN_RATE_MIB, PARTS)
#   scripts/bench.sh concurrent             (only 32 concurrent uploads from 32 accounts with a
#                                            ListImages reader: CONC_UPLOADS, CONC_MIB)
#   scripts/bench.sh cluster                (only one node on PostgreSQL against one on SQLite:
#                                            tus upload, registration, GetImage and ListImages;
#                                            CLUSTER_MIB, CLUSTER_IMAGES, CLUSTER_SECS)
#   scripts/bench.sh cluster-list           (only GetImage and every ListImages filter at LIST_IMAGES
#                                            (100 000) images on SQLite and on PostgreSQL; LIST_SECS,
#                                            LIST_ONLY: an extended regexp of the rows to run;
#                                            LIST_CACHE_MIB=0: no list kept by the nodes)
#   scripts/bench.sh nodes                  (only 1, 2 and 3 nodes over one PostgreSQL: aggregate
#                                            uploads and ListImages req/s; NODES_MIB, NODES_SECS)
#   scripts/bench.sh download-stats         (only GetImageFile of a small file with download counting
#                                            on and off, same build, same run; DL_SECS, DL_ROUNDS)
#   scripts/bench.sh lifecycle              (only `imgapi lifecycle plan` over LIFECYCLE_IMAGES
#                                            (100 000) images: time and peak memory)
#   scripts/bench.sh download               (only GetImageFile against nginx from the page cache, 1
#                                            and DL_STREAMS (32) streams, CPU per GiB, peak RSS, and
#                                            from S3 against a plain GET; DL_MIB, DL_ROUNDS, DL_MANY,
#                                            DL_PART=local|s3)
#
# The ListImages section needs `wrk` (Debian: apt-get install wrk).
#
# Peers are installed on first use and cached under target/: @tus/server and
# @tus/file-store (npm) and rustus (crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY_LIST=
if [ "${1:-}" = list ]; then ONLY_LIST=1; shift; fi
ONLY_CLIENT=
if [ "${1:-}" = client ]; then ONLY_CLIENT=1; shift; fi
ONLY_SECTION=
case "${1:-}" in parallel|concurrent|cluster|cluster-list|nodes|download-stats|download|lifecycle) ONLY_SECTION=$1; shift ;; esac
SIZE_MIB=${1:-2048}
TUS_MIB=${2:-1024}
WORK=$(mktemp -d /tmp/imgapi-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# BENCH_PROFILE=dev: a quick check of the script itself on the debug build.
PROFILE=${BENCH_PROFILE:-release}
OUT=$PWD/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
# BENCH_BIN=PATH: another imgapi binary (e.g. a build of an earlier commit).
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --profile "$PROFILE" --bin imgapi >/dev/null 2>&1
  BIN=$OUT/imgapi
fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mibps() { awk -v s="$SIZE_MIB" -v t="$1" 'BEGIN { printf "%.1f", s / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

start_server() {  # [DATA_DIR] [LISTEN]
  "$BIN" serve --listen "${2:-127.0.0.1:0}" --data-dir "${1:-$WORK/data}" > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  # (up to 60 s: opening a database seeded by SQL first stores each image's
  # list form, sql/0011, about 10 s for 100 000 images)
  for _ in $(seq 600); do
    URL=$(sed -n 's/^imgapi listening on //p' "$WORK/server.out")
    [ -n "$URL" ] && return
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$WORK/server.err" >&2; exit 1
}
timed() { local t0 t1; t0=$(now); "$@" > /dev/null; t1=$(now); secs "$t0" "$t1"; echo; }

# ListImages at scale: LIST_IMAGES images (default 100 000; 50 owners,
# 500 names) inserted straight into the database by SQL (`list_seed`,
# below: the HTTP API would take far longer) after the server created and
# migrated it, so the triggers of sql/0007 fill the side tables as for any
# insert; then wrk with 32 connections on each filter and the common pairs,
# LIST_SECS seconds each. Each query's req/s is compared with the
# unfiltered `limit=100` in the same run; goals: >= 0.5x, p99 < 50 ms,
# server peak RSS < 128 MiB. Needs the sqlite3 CLI (with FTS5) and wrk.
#
# Image i: owner i % 50, name img(i % 500), version 1.0.(i / 500); one in
# two public, one in 20 disabled, one in 50 unactivated; os, type, tags and
# billing tags cycle through small sets; one private image in ten is
# shared (acl) with the next owner. The manifest has the fields and shape
# of what CreateImage stores; the server stores each image's list form
# (`images.wire`, sql/0011) when it next opens the database.
list_seed() {  # DB N OWNERS NAMES
  sqlite3 "$1" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < $2),
r AS (SELECT i,
  printf('11110000-0000-4000-8000-%012x', i) AS uuid,
  printf('0b0b0000-0000-4000-8000-%012x', i % $3) AS owner,
  'img' || (i % $4) AS name,
  '1.0.' || (i / $4) AS version,
  (i % 50 != 1) AS activated,
  (i % 20 = 7) AS disabled,
  (i % 2 = 0) AS public,
  strftime('%Y-%m-%dT%H:%M:%S.000Z', 1600000000 + i * 37, 'unixepoch') AS published,
  CASE i % 4 WHEN 0 THEN 'zone-dataset' WHEN 1 THEN 'zvol' WHEN 2 THEN 'lx-dataset' ELSE 'docker' END AS type,
  CASE i % 3 WHEN 0 THEN 'smartos' WHEN 1 THEN 'linux' ELSE 'windows' END AS os,
  CASE WHEN i % 2 = 1 AND i % 10 = 3 THEN json_array(printf('0b0b0000-0000-4000-8000-%012x', (i + 1) % $3)) ELSE '[]' END AS acl,
  CASE WHEN i % 10 = 0 THEN 'os' ELSE 'app' END AS role,
  'g' || (i % 100) AS grp
  FROM s)
INSERT INTO images (uuid, owner, name, version, state, activated, disabled, public, type, os,
  origin, published_at, acl, tags_search, billing_tags, expires_at, manifest, channels)
SELECT uuid, owner, name, version,
  CASE WHEN NOT activated THEN 'unactivated' WHEN disabled THEN 'disabled' ELSE 'active' END,
  activated, disabled, public, type, os, NULL,
  CASE WHEN activated THEN published END,
  acl, json_array('role=' || role, 'group=' || grp), json_array('b' || (i % 20)), NULL,
  json_object('v', 2, 'uuid', uuid, 'owner', owner, 'name', name, 'version', version,
    'description', 'Benchmark image ' || i || ': a base image with the usual packages installed.',
    'homepage', 'https://docs.example.com/images/base',
    'activated', json(CASE WHEN activated THEN 'true' ELSE 'false' END),
    'disabled', json(CASE WHEN disabled THEN 'true' ELSE 'false' END),
    'public', json(CASE WHEN public THEN 'true' ELSE 'false' END),
    'published_at', CASE WHEN activated THEN published END,
    'type', type, 'os', os,
    'files', json_array(json_object('sha1', printf('%040x', i * 2654435761), 'size', 104857600 + i,
      'compression', 'gzip', 'stor', 'local', 'content_md5', '1B2M2Y8AsgTpgAmY7PhCfg==', 'mtime', published)),
    'acl', json(acl),
    'requirements', json('{"min_platform":{"7.0":"20200101T000000Z"},"networks":[{"name":"net0","description":"public"}]}'),
    'billing_tags', json_array('b' || (i % 20)),
    'tags', json_object('role', role, 'group', grp)),
  '[]'
FROM r;
COMMIT;
SQL
}

# The queries of the ListImages sections: LABEL|QUERY (@O0, @O1: owners;
# @MID: a marker in the middle of the dates).
list_queries() {
  cat <<'QUERIES'
unfiltered limit=100 (the base)|limit=100
owner|limit=100&owner=@O0
name|limit=100&name=img8
name=~ (trigram)|limit=100&name=~img12
name=~ (2 chars)|limit=100&name=~g7
version|limit=100&version=1.0.77
version=~ (trigram)|limit=100&version=~0.77
os|limit=100&os=linux
type|limit=100&type=zvol
public=true|limit=100&public=true
public=false|limit=100&public=false
state=disabled|limit=100&state=disabled
state=all|limit=100&state=all
tag.role=os|limit=100&tag.role=os
tag.role= (key)|limit=100&tag.role=
billing_tag|limit=100&billing_tag=b3
account (visibility union)|limit=100&account=@O0
sort=published_at.desc|limit=100&sort=published_at.desc
marker (uuid)|limit=100&marker=@MID
account + name|limit=100&account=@O0&name=img8
account + name=~|limit=100&account=@O0&name=~img12
account + os|limit=100&account=@O1&os=linux
account + tag|limit=100&account=@O1&tag.role=os
account + public=false|limit=100&account=@O1&public=false
account + desc + marker|limit=100&account=@O1&sort=published_at.desc&marker=@MID
owner + name|limit=100&owner=@O0&name=img0
name + version|limit=100&name=img8&version=1.0.77
name + desc|limit=100&name=img8&sort=published_at.desc
os + type|limit=100&os=linux&type=zvol
unfiltered limit=1000 (body 10x, no ratio goal)|limit=1000
account limit=1000|limit=1000&account=@O0
QUERIES
}

list_bench() {
  local n=${LIST_IMAGES:-100000} dur=${LIST_SECS:-8}
  echo "== ListImages: $n images (50 owners, 500 names), 32 connections (wrk, 2 threads), ${dur} s per query"
  command -v wrk > /dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
  command -v sqlite3 > /dev/null || { echo "the sqlite3 CLI is needed: apt-get install sqlite3" >&2; exit 1; }
  local dir=$WORK/list t0
  rm -rf "$dir"; mkdir -p "$dir"
  start_server "$dir"   # creates and migrates the database
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  t0=$(now)
  # LIST_SEEDED=DIR: the seeded database is kept in DIR and reused by the
  # next runs with the same LIST_IMAGES (seeding takes 10 s to minutes).
  local keep=${LIST_SEEDED:-}
  if [ -n "$keep" ] && [ -f "$keep/imgapi-$n.sqlite" ]; then
    cp "$keep/imgapi-$n.sqlite" "$dir/imgapi.sqlite"
    rm -f "$dir/imgapi.sqlite-wal" "$dir/imgapi.sqlite-shm"
    echo "seeded database of $n images copied from $keep"
  else
    list_seed "$dir/imgapi.sqlite" "$n" 50 500 > /dev/null
    echo "seeded $n images in $(secs "$t0" "$(now)") s; database $(du -sm "$dir" | cut -f1) MiB"
    if [ -n "$keep" ]; then
      mkdir -p "$keep"
      sqlite3 "$dir/imgapi.sqlite" "PRAGMA wal_checkpoint(TRUNCATE);" > /dev/null
      cp "$dir/imgapi.sqlite" "$keep/imgapi-$n.sqlite"
    fi
  fi
  start_server "$dir"
  local o0=0b0b0000-0000-4000-8000-000000000000 o1=0b0b0000-0000-4000-8000-000000000001
  local idle mid
  idle=$(hwm_mib "$SERVER_PID")
  mid=$(curl -sf "$URL/images?limit=1&marker=2020-09-01T00:00:00.000Z" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["uuid"])')
  # to milliseconds, from wrk's "1.23ms" / "456.00us" / "1.02s"
  ms() { awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); x = v + 0; if (u == "us") x /= 1000; else if (u == "s") x *= 1000; printf "%.1f", x }'; }
  local base=0
  printf '%-44s %7s %9s %7s %8s %s\n' query images "req/s" ratio "p99 ms" goals
  while IFS='|' read -r label q; do
    [ -z "$label" ] && continue
    q=${q//@O0/$o0}; q=${q//@O1/$o1}; q=${q//@MID/$mid}
    local count out rps p99 non2xx ratio_s ok
    count=$(curl -sf "$URL/images?$q" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    out=$(wrk -t2 -c32 -d"${dur}s" --latency "$URL/images?$q")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
    p99=$(ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
    [ -n "$non2xx" ] && { echo "$label: $non2xx non-2xx answers" >&2; exit 1; }
    [ "$base" = 0 ] && base=$rps
    ratio_s=$(ratio "$rps" "$base")
    ok=$(awk -v r="$ratio_s" -v p="$p99" -v l="$q" 'BEGIN { if (l ~ /limit=1000/) print "(memory)"; else print (r >= 0.5 && p < 50) ? "ok" : "MISSED" }')
    printf '%-44s %7s %9s %7s %8s %s\n' "$label" "$count" "$rps" "$ratio_s" "$p99" "$ok"
  done < <(list_queries)
  echo "server peak RSS: $(hwm_mib "$SERVER_PID") MiB through the run (idle $idle MiB; goal < 128)"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
}

# ==== client verbs: publish, file get, import-remote (CLIENT_MIB, default 1024) ====
# Each figure is a ratio to a tool doing the least the same job needs, timed
# in the same round on the same file (median of CLIENT_ROUNDS rounds):
#   publish (tus upload + registration + active) / md5sum of the file (goal >= 0.7)
#   file get (download, md5+sha1 verified, renamed) / curl -o  (goal >= 0.9)
#   import-remote between two local servers / curl -o of the source's file (goal >= 0.7)
bench_client() {
  local mib=${CLIENT_MIB:-1024} rounds=${CLIENT_ROUNDS:-3} d=$WORK/client
  local f=$d/image.zfs.gz url src_pid dst_pid src dst
  mkdir -p "$d/state"
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$f"
  printf '\x1f\x8b\x08' | dd of="$f" conv=notrunc status=none
  sync
  cmb() { awk -v s="$mib" -v t="$1" 'BEGIN { printf "%.1f", s / t }'; }
  cmed() { awk -v c="$1" '{print $c}' "$d/rounds" | sort -g | sed -n "$(( (rounds + 1) / 2 ))p"; }
  cmedr() { awk -v a="$1" -v b="$2" '{printf "%.3f\n", $a / $b}' "$d/rounds" | sort -g | sed -n "$(( (rounds + 1) / 2 ))p"; }
  serve_at() {  # DATA_DIR OUT -> pid in $!, url in OUT
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$1" > "$2" 2> "$2.err" &
  }
  url_of() { for _ in $(seq 100); do u=$(sed -n 's/^imgapi listening on //p' "$1"); [ -n "$u" ] && { echo "$u"; return; }; sleep 0.1; done; echo "server did not start" >&2; exit 1; }
  serve_at "$d/src" "$d/src.out"; src_pid=$!; src=$(url_of "$d/src.out")
  serve_at "$d/dst" "$d/dst.out"; dst_pid=$!; dst=$(url_of "$d/dst.out")
  printf '{"v":2,"name":"clientbench","version":"1.0.0","os":"smartos","type":"zone-dataset","owner":"ba28f844-8cb4-f141-882d-46d6251e6a9f","public":true}' > "$d/m.json"
  : > "$d/rounds"
  for r in $(seq "$rounds"); do
    sync
    local m p p4 g c i c2 uuid uuid4 dd cs
    m=$(timed md5sum "$f")
    sync
    # The disk's durable write rate: every verb below makes its bytes
    # durable (the server fsyncs each PATCH and each import, file get its
    # output before the rename), so none can beat this.
    dd=$(timed dd if="$f" of="$d/out.dd" bs=8M conv=fsync status=none)
    rm -f "$d/out.dd"
    sync
    local t0 t1; t0=$(now)
    uuid=$(IMGAPI_URL=$src IMGAPI_STATE_DIR=$d/state "$BIN" publish -m "$d/m.json" -f "$f" --json --parallel 1 \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["image"]["uuid"])')
    t1=$(now); p=$(secs "$t0" "$t1")
    t0=$(now)
    uuid4=$(IMGAPI_URL=$src IMGAPI_STATE_DIR=$d/state "$BIN" publish -m "$d/m.json" -f "$f" --json --parallel 4 \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["image"]["uuid"])')
    t1=$(now); p4=$(secs "$t0" "$t1")
    curl -sf -XDELETE "$src/images/$uuid4" > /dev/null
    rm -f "$d/out" "$d/out.curl"
    g=$(IMGAPI_URL=$src IMGAPI_STATE_DIR=$d/state timed "$BIN" file get "$uuid" -o "$d/out")
    c=$(timed curl -sf -o "$d/out.curl" "$src/images/$uuid/file")
    cmp -s "$d/out" "$f" || { echo "file get: bytes differ" >&2; exit 1; }
    rm -f "$d/out" "$d/out.curl"
    sync
    # curl with the durability file get gives its output: fsynced.
    cs=$(timed sh -c "curl -sf -o '$d/out.curl' '$src/images/$uuid/file' && sync '$d/out.curl'")
    rm -f "$d/out.curl"
    sync
    i=$(IMGAPI_URL=$dst IMGAPI_STATE_DIR=$d/state timed "$BIN" import-remote "$uuid" --source "$src" --json)
    c2=$(timed curl -sf -o "$d/out.curl" "$src/images/$uuid/file")
    rm -f "$d/out.curl"
    echo "$m $p $g $c $i $c2 $p4 $dd $cs" >> "$d/rounds"
    echo "round $r: md5sum $(cmb "$m"), dd+fsync $(cmb "$dd"), publish $(cmb "$p"), --parallel 4 $(cmb "$p4"), file get $(cmb "$g"), curl $(cmb "$c"), curl+fsync $(cmb "$cs"), import-remote $(cmb "$i"), curl $(cmb "$c2") MiB/s"
    curl -sf -XDELETE "$src/images/$uuid" > /dev/null
    curl -sf -XDELETE "$dst/images/$uuid" > /dev/null
  done
  echo "disk:            $(cmb "$(cmed 8)") MiB/s written and fsynced (dd conv=fsync); md5sum $(cmb "$(cmed 1)") MiB/s; curl -o $(cmb "$(cmed 4)"), curl -o + fsync $(cmb "$(cmed 9)") MiB/s"
  echo "publish:         $(cmb "$(cmed 2)") MiB/s = $(cmedr 1 2) x md5sum (goal >= 0.7), $(cmedr 8 2) x the disk (${mib} MiB end to end: upload, register, active; --parallel 1)"
  echo "publish -p 4:    $(cmb "$(cmed 7)") MiB/s = $(cmedr 2 7) x publish --parallel 1 (local, no added latency)"
  echo "file get:        $(cmb "$(cmed 3)") MiB/s = $(cmedr 4 3) x curl -o (goal >= 0.9), $(cmedr 9 3) x curl -o + fsync, $(cmedr 1 3) x md5sum (md5+sha1 verified, fsynced, renamed into place)"
  echo "import-remote:   $(cmb "$(cmed 5)") MiB/s = $(cmedr 6 5) x curl -o of the source's file (goal >= 0.7), $(cmedr 9 5) x curl -o + fsync (job polled to its end)"
  kill "$src_pid" "$dst_pid"; wait "$src_pid" "$dst_pid" 2>/dev/null || true
}
if [ -n "$ONLY_CLIENT" ]; then
  bench_client
  exit 0
fi

if [ -n "$ONLY_LIST" ]; then
  list_bench
  exit 0
fi

# ==== parallel uploads (tus concatenation) through a WAN link ====
# examples/wanproxy.rs between the client and the server: WAN_RTT_MS of
# added round trip (half each way, a delay line) and WAN_RATE_MIB MiB/s per
# TCP connection and direction (a token bucket per connection), a TCP-like
# window of bytes in flight. First the proxy alone (curl of a file from a
# static server, direct and through it, 1 and PARTS connections), so its
# own ceiling is known; then BENCH_MIB (default 1024) uploaded as one tus
# stream and as PARTS partial uploads + a final (goal >= 2.5x).
parallel_bench() {
  local mib=${BENCH_MIB:-1024} rtt=${WAN_RTT_MS:-50} rate=${WAN_RATE_MIB:-50} parts=${PARTS:-4}
  local d=$WORK/parallel f t0 t1 hport proxy_pid proxy2_pid purl
  echo "== parallel uploads: ${mib} MiB through a WAN proxy (+${rtt} ms RTT, ${rate} MiB/s per connection), 1 stream vs ${parts} partials + final"
  cargo build --profile "$PROFILE" --example wanproxy >/dev/null 2>&1
  mkdir -p "$d/www"
  f=$d/www/image.bin
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$f"
  sync
  start_server "$d/data"
  proxy_up() {  # TARGET_HOSTPORT OUT -> pid in PROXY_PID, address in PROXY
    "$OUT/examples/wanproxy" --listen 127.0.0.1:0 --to "$1" --rtt-ms "$rtt" --rate-mib "$rate" > "$2" 2>&1 &
    PROXY_PID=$!
    for _ in $(seq 100); do
      PROXY=$(sed -n 's/^wanproxy \([0-9.:]*\) -> .*/\1/p' "$2")
      [ -n "$PROXY" ] && return
      sleep 0.1
    done
    echo "wanproxy did not start" >&2; cat "$2" >&2; exit 1
  }
  # the proxy alone: a static file server, direct and through the proxy
  hport=$((20000 + RANDOM % 20000))
  python3 -m http.server "$hport" --bind 127.0.0.1 --directory "$d/www" > /dev/null 2>&1 &
  local http_pid=$!
  wait_port "$hport"
  proxy_up "127.0.0.1:$hport" "$d/proxy-http.out"; proxy2_pid=$PROXY_PID
  local direct one many
  dl() { curl -sf -o /dev/null -w '%{speed_download}' "$1" | awk '{ printf "%.1f", $1 / 1048576 }'; }
  direct=$(dl "http://127.0.0.1:$hport/image.bin")
  one=$(dl "http://$PROXY/image.bin")
  local cpids=()
  t0=$(now)
  for _ in $(seq "$parts"); do curl -sf -o /dev/null "http://$PROXY/image.bin" & cpids+=($!); done
  wait "${cpids[@]}"
  t1=$(now)
  many=$(awk -v m="$mib" -v n="$parts" -v t="$(secs "$t0" "$t1")" 'BEGIN { printf "%.1f", m * n / t }')
  sed 's/^/proxy: /' "$d/proxy-http.out"
  echo "proxy alone (curl of the ${mib} MiB file): direct ${direct} MiB/s; through the proxy, 1 connection ${one} MiB/s, ${parts} connections ${many} MiB/s together"
  kill "$proxy2_pid" "$http_pid" 2>/dev/null; wait "$proxy2_pid" "$http_pid" 2>/dev/null || true

  proxy_up "${URL#http://}" "$d/proxy.out"
  purl=http://$PROXY
  local single par late final1 final2 final3 idle_rss
  idle_rss=$(hwm_mib "$SERVER_PID")
  sync
  read -r single final1 < <(python3 scripts/tus_bench_client.py upload "$purl/uploads" "$f" 64)
  sync
  read -r par final2 < <(python3 scripts/tus_bench_client.py parallel "$purl/uploads" "$f" "$parts" 64)
  sync
  read -r late final3 < <(python3 scripts/tus_bench_client.py parallel-late "$purl/uploads" "$f" "$parts" 64)
  local want got
  want=$(sha1sum "$f" | cut -c1-40)
  for u in "$final1" "$final2" "$final3"; do
    got=$(curl -sf "$URL/uploads/${u##*/}/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha1"])')
    [ "$got" = "$want" ] || { echo "sha1 mismatch for $u: $got != $want" >&2; exit 1; }
  done
  local srate prate lrate win
  srate=$(awk -v m="$mib" -v t="$single" 'BEGIN { printf "%.1f", m / t }')
  prate=$(awk -v m="$mib" -v t="$par" 'BEGIN { printf "%.1f", m / t }')
  lrate=$(awk -v m="$mib" -v t="$late" 'BEGIN { printf "%.1f", m / t }')
  win=$(sed -n 's/.*window \([0-9]*\) KiB.*/\1/p' "$d/proxy.out")
  echo "single stream:   ${srate} MiB/s (${single} s; 64 MiB PATCHes on one connection)"
  echo "${parts} partials:      ${prate} MiB/s (${par} s, until the final upload is complete; final created first, as imgapi publish --parallel does: partials written in place)"
  echo "${parts} partials, late: ${lrate} MiB/s (${late} s; final created after the partials, as tus-js-client parallelUploads does: the final is filled by a copy)"
  echo "parallel / single: $(ratio "$single" "$par") x (goal >= 2.5); final-last order: $(ratio "$single" "$late") x"
  echo "single stream limits: per-connection cap ${rate} MiB/s (proxy alone, 1 connection: ${one} MiB/s); window ${win} KiB / ${rtt} ms RTT allows $(awk -v w="$win" -v r="$rtt" 'BEGIN { printf "%.0f", w / 1024 / (r / 1000) }') MiB/s; bandwidth-delay product at the cap $(awk -v a="$rate" -v r="$rtt" 'BEGIN { printf "%.1f", a * r / 1000 }') MiB; one idle round trip per PATCH ($(( (mib + 63) / 64 )) PATCHes)"
  echo "server peak RSS: $(hwm_mib "$SERVER_PID") MiB (idle ${idle_rss} MiB)"
  kill "$PROXY_PID" "$SERVER_PID" 2>/dev/null; wait "$PROXY_PID" "$SERVER_PID" 2>/dev/null || true
  rm -rf "$d"
}

# ==== concurrent uploads: CONC_UPLOADS (32) accounts at once, a ListImages reader ====
# 10 000 images seeded (list_seed) so that the reader's `limit=100` pages are
# full; one upload of CONC_MIB (64) alone first (median of 3), then
# CONC_UPLOADS at once, each from its own account (`?account=`, auth none),
# while one connection lists images in a loop. Goals: aggregate >= 0.9x one
# upload alone; slowest upload <= 1.5x the median; list p99 reported.
concurrent_bench() {
  local n=${CONC_UPLOADS:-32} mib=${CONC_MIB:-64} d=$WORK/concurrent
  echo "== concurrent uploads: ${n} x ${mib} MiB from ${n} accounts at once, with a ListImages reader"
  mkdir -p "$d"
  start_server "$d/data"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  list_seed "$d/data/imgapi.sqlite" 10000 50 500 > /dev/null
  start_server "$d/data"
  local f=$d/image.bin
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$f"
  sync
  local acct i t alone=()
  acct() { printf 'ac0c0000-0000-4000-8000-%012x' "$1"; }
  for i in 1 2 3; do
    sync
    read -r t _ < <(python3 scripts/tus_bench_client.py upload "$URL/uploads?account=$(acct 999)" "$f" 64)
    alone+=("$t")
  done
  local alone_s
  alone_s=$(printf '%s\n' "${alone[@]}" | sort -g | sed -n 2p)
  # The same total bytes as the n uploads together, in one upload alone: a
  # 64 MiB upload fits in the disk's and the page cache's write-back
  # buffers, so its rate is a burst; n x 64 MiB shows the sustained rate.
  # And the disk's own limit for those bytes: written and fsynced by dd.
  local big=$d/big.bin big_s disk_s
  cat $(for i in $(seq "$n"); do echo "$f"; done) > "$big"
  sync
  read -r big_s _ < <(python3 scripts/tus_bench_client.py upload "$URL/uploads?account=$(acct 998)" "$big" 64)
  sync
  local t0 t1
  t0=$(now); dd if="$big" of="$d/dd.out" bs=8M conv=fsync status=none; t1=$(now)
  disk_s=$(secs "$t0" "$t1")
  rm -f "$d/dd.out" "$big"
  sync
  # the reader alone, 3 s: its p99 with no upload running
  rm -f "$d/stop"
  python3 scripts/tus_bench_client.py lister "$URL/images?limit=100" "$d/stop" > "$d/list-idle" &
  local lpid=$!
  sleep 3; touch "$d/stop"; wait "$lpid"
  rm -f "$d/stop"
  python3 scripts/tus_bench_client.py lister "$URL/images?limit=100" "$d/stop" > "$d/list-busy" &
  lpid=$!
  sync
  # All n clients start their Python first and wait at a start line, so
  # the time counts the uploads, not n interpreters starting on the two
  # cores the server is already hashing on.
  local pids=() go=$d/start
  mkdir -p "$go"
  for i in $(seq "$n"); do
    BENCH_START_DIR=$go python3 scripts/tus_bench_client.py upload "$URL/uploads?account=$(acct "$i")" "$f" 64 > "$d/up.$i" &
    pids+=($!)
  done
  while [ "$(find "$go" -name 'ready.*' | wc -l)" -lt "$n" ]; do sleep 0.05; done
  t0=$(now)
  touch "$go/go"
  wait "${pids[@]}"
  t1=$(now)
  touch "$d/stop"; wait "$lpid"
  local wall agg single med slow
  wall=$(secs "$t0" "$t1")
  for i in $(seq "$n"); do awk '{print $1}' "$d/up.$i"; done | sort -g > "$d/times"
  [ "$(wc -l < "$d/times")" = "$n" ] || { echo "an upload failed" >&2; exit 1; }
  med=$(sed -n "$(( (n + 1) / 2 ))p" "$d/times"); slow=$(tail -1 "$d/times")
  single=$(awk -v m="$mib" -v t="$alone_s" 'BEGIN { printf "%.1f", m / t }')
  agg=$(awk -v m="$mib" -v n="$n" -v t="$wall" 'BEGIN { printf "%.1f", m * n / t }')
  local sustained disk
  sustained=$(awk -v m="$mib" -v n="$n" -v t="$big_s" 'BEGIN { printf "%.1f", m * n / t }')
  disk=$(awk -v m="$mib" -v n="$n" -v t="$disk_s" 'BEGIN { printf "%.1f", m * n / t }')
  echo "one upload alone: ${single} MiB/s (${mib} MiB, ${alone_s} s, median of 3: ${alone[*]}: a burst the write-back caches absorb)"
  echo "one upload alone: ${sustained} MiB/s ($((n * mib)) MiB, the bytes of all ${n} in one upload, ${big_s} s: sustained)"
  echo "disk limit:       ${disk} MiB/s (dd of those $((n * mib)) MiB with fsync, ${disk_s} s)"
  echo "${n} at once:      ${agg} MiB/s together (${wall} s for all) = $(ratio "$agg" "$sustained") x one upload of the same bytes alone (goal >= 0.9), $(ratio "$agg" "$single") x one ${mib} MiB burst, $(ratio "$agg" "$disk") x the disk"
  echo "per upload:       median ${med} s, slowest ${slow} s = $(ratio "$slow" "$med") x the median (goal <= 1.5), fastest $(head -1 "$d/times") s"
  read -r lr lp50 lp99 lmax < "$d/list-busy"
  read -r ir ip50 ip99 imax < "$d/list-idle"
  echo "ListImages limit=100 (one connection in a loop, 10 000 images): during the uploads ${lr} requests, p50 ${lp50} ms, p99 ${lp99} ms, max ${lmax} ms; alone p50 ${ip50} ms, p99 ${ip99} ms"
  echo "server peak RSS: $(hwm_mib "$SERVER_PID") MiB"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$d"
}

wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

# One node on PostgreSQL against one node on SQLite, same machine, same
# run, same client: tus upload throughput (the median of ROUNDS uploads of
# CLUSTER_MIB, 64 MiB PATCHes, the Python sendfile client), the
# registration fast path (POST /images naming a finished upload, ?wait
# until active), and GetImage / ListImages req/s (wrk, 32 connections,
# CLUSTER_SECS each) over CLUSTER_IMAGES images made by CreateImage.
# Goals (issue 21): upload >= 0.9x, registration <= 2x time, reads >= 0.5x.
cluster_bench() {
  local mib=${CLUSTER_MIB:-1024} n=${CLUSTER_IMAGES:-2000} secs=${CLUSTER_SECS:-10}
  local d=$WORK/cluster pg_port=55490 f
  mkdir -p "$d"
  f=$d/file.bin
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$f"
  local md5; md5=$(openssl dgst -md5 -binary "$f" | base64)
  # (its own directory: the postgres user cannot enter $WORK)
  PG_BENCH_DIR=$(mktemp -d /tmp/imgapi-bench-pg.XXXXXX)
  trap 'scripts/pg-server.sh stop "$PG_BENCH_DIR" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK" "$PG_BENCH_DIR"' EXIT
  scripts/pg-server.sh start "$PG_BENCH_DIR" "$pg_port" > /dev/null
  psql -X -q "postgres://postgres@127.0.0.1:$pg_port/postgres" -c "CREATE DATABASE imgapi_bench"
  local backend url pid u t0 t1
  for backend in sqlite postgres; do
    if [ "$backend" = postgres ]; then
      export IMGAPI_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/imgapi_bench"
    else
      unset IMGAPI_DATABASE_URL
    fi
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$d/data-$backend" > "$d/$backend.out" 2> "$d/$backend.err" &
    pid=$!
    for _ in $(seq 100); do url=$(sed -n 's/^imgapi listening on //p' "$d/$backend.out"); [ -n "$url" ] && break; sleep 0.1; done
    : > "$d/$backend.up"
    for r in 1 2 3; do
      sync
      read -r t u < <(python3 scripts/tus_bench_client.py upload "$url/uploads" "$f" 64)
      echo "$t" >> "$d/$backend.up"
      [ "$r" -lt 3 ] && curl -sf -XDELETE -H 'Tus-Resumable: 1.0.0' "$u" > /dev/null
    done
    local id=${u##*/}
    t0=$(now)
    curl -sf -XPOST -H 'content-type: application/json' "$url/images?wait=600" \
      -d "{\"name\":\"bench\",\"version\":\"1.0.0\",\"os\":\"other\",\"type\":\"other\",\"owner\":\"ba28f844-8cb4-f141-882d-46d6251e6a9f\",\"files\":[{\"upload\":\"$id\",\"content_md5\":\"$md5\",\"compression\":\"none\"}]}" > "$d/$backend.reg"
    t1=$(now)
    echo "$(secs "$t0" "$t1")" > "$d/$backend.regtime"
    local uuid; uuid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uuid"])' "$d/$backend.reg")
    python3 - "$url" "$n" <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1]); c = http.client.HTTPConnection(u.hostname, u.port)
for i in range(int(sys.argv[2])):
    body = json.dumps({"name": "img%d" % (i % 500), "version": "1.0.%d" % i, "os": "smartos",
        "type": "zone-dataset", "owner": "ba28f844-8cb4-f141-882d-46d6251e6a9f", "public": i % 2 == 0,
        "tags": {"role": "r%d" % (i % 7)}})
    c.request("POST", "/images", body, {"content-type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
    : > "$d/$backend.reads"
    local q
    for q in "/images/$uuid" "/images?limit=100&state=all" "/images?name=~g12&state=all" "/images?tag.role=r3&state=all&limit=100"; do
      wrk -t2 -c32 -d"${secs}s" "$url$q" 2>/dev/null | awk -v q="$q" '/Requests\/sec/ {print q, $2}' >> "$d/$backend.reads"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
  unset IMGAPI_DATABASE_URL
  med3() { sort -g "$1" | sed -n 2p; }
  local us up rs rp
  us=$(med3 "$d/sqlite.up"); up=$(med3 "$d/postgres.up")
  echo "cluster: $mib MiB tus upload (median of 3): SQLite $(awk -v s="$mib" -v t="$us" 'BEGIN{printf "%.1f", s/t}') MiB/s, PostgreSQL $(awk -v s="$mib" -v t="$up" 'BEGIN{printf "%.1f", s/t}') MiB/s: $(ratio "$us" "$up")x (goal >= 0.9x)"
  rs=$(cat "$d/sqlite.regtime"); rp=$(cat "$d/postgres.regtime")
  echo "cluster: registration fast path ($mib MiB upload, until active): SQLite ${rs}s, PostgreSQL ${rp}s: $(ratio "$rp" "$rs")x the time (goal <= 2x)"
  paste "$d/sqlite.reads" "$d/postgres.reads" | awk -v n="$n" '{printf "cluster: %s over %d images: SQLite %s req/s, PostgreSQL %s req/s: %.2fx (goal >= 0.5x)\n", $1, n, $2, $4, $4 / $2}'
}

# ListImages and GetImage at scale on both backends, same run, same
# client: LIST_IMAGES images (default 100 000) seeded as in the `list`
# section into SQLite, then copied row for row into PostgreSQL (its side
# tables filled from the same JSON columns as db::pg::images fills them).
# Each query runs LIST_SECS (default 5) with wrk, 32 connections, on one
# node on SQLite and then on one node on PostgreSQL. Goals (issue 21):
# GetImage and every list >= 0.5x SQLite's req/s, and on each backend
# every filter and pair >= 0.5x that backend's unfiltered `limit=100`.
cluster_list_bench() {
  local n=${LIST_IMAGES:-100000} dur=${LIST_SECS:-5} d=$WORK/clist pg_port=55492
  command -v wrk > /dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
  command -v sqlite3 > /dev/null || { echo "the sqlite3 CLI is needed: apt-get install sqlite3" >&2; exit 1; }
  mkdir -p "$d"
  PG_LIST_DIR=$(mktemp -d /tmp/imgapi-bench-pg.XXXXXX)
  trap 'scripts/pg-server.sh stop "$PG_LIST_DIR" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK" "$PG_LIST_DIR"' EXIT
  scripts/pg-server.sh start "$PG_LIST_DIR" "$pg_port" > /dev/null
  local pg="postgres://postgres@127.0.0.1:$pg_port"
  psql -X -q "$pg/postgres" -c "CREATE DATABASE imgapi_list"
  local t0; t0=$(now)
  # SQLite: created and migrated by the server, seeded, opened again (the
  # server stores each image's list form).
  start_server "$d/sqlite"; kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  list_seed "$d/sqlite/imgapi.sqlite" "$n" 50 500 > /dev/null
  start_server "$d/sqlite"; kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  # PostgreSQL: migrated by the server, then the same rows.
  IMGAPI_DATABASE_URL="$pg/imgapi_list" start_server "$d/pg"; kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  local cols="uuid, owner, name, version, state, activated, disabled, public, type, os, origin, published_at, acl, tags_search, billing_tags, channels, expires_at, manifest, wire"
  sqlite3 -csv "$d/sqlite/imgapi.sqlite" "SELECT $cols FROM images" > "$d/images.csv"
  psql -X -q -v ON_ERROR_STOP=1 "$pg/imgapi_list" <<SQL
\copy images ($cols) FROM '$d/images.csv' WITH (FORMAT csv)
INSERT INTO image_tags (tag, uuid, state, published_at)
  SELECT t, uuid, state, published_at FROM images, jsonb_array_elements_text(tags_search) t;
INSERT INTO image_billing_tags (tag, uuid, state, published_at)
  SELECT t, uuid, state, published_at FROM images, jsonb_array_elements_text(billing_tags) t;
INSERT INTO image_acl (account, uuid)
  SELECT a::uuid, uuid FROM images, jsonb_array_elements_text(acl) a;
VACUUM ANALYZE;
SQL
  rm -f "$d/images.csv"
  echo "seeded $n images into SQLite and PostgreSQL in $(secs "$t0" "$(now)") s"
  local o0=0b0b0000-0000-4000-8000-000000000000 o1=0b0b0000-0000-4000-8000-000000000001
  local mid=2020-09-01T00:00:00.000Z one; one=$(printf "11110000-0000-4000-8000-%012x" $((n / 2)))
  ms() { awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); x = v + 0; if (u == "us") x /= 1000; else if (u == "s") x *= 1000; printf "%.1f", x }'; }
  # Both nodes up at once; each query runs on SQLite's and then at once on
  # PostgreSQL's, so that a pair is measured under the same load.
  # LIST_CACHE_MIB sets both nodes' `[limits] list_cache_mib` (0: every
  # list read from the database; default: the server's 64, so that a
  # query asked again is answered from the node's cache).
  local sq_url sq_pid pg_url pg_pid
  if [ -n "${LIST_CACHE_MIB:-}" ]; then
    printf '[limits]\nlist_cache_mib = %s\n' "$LIST_CACHE_MIB" > "$d/cache.toml"
    export IMGAPI_CONFIG="$d/cache.toml"
  fi
  start_server "$d/sqlite"; sq_url=$URL; sq_pid=$SERVER_PID
  IMGAPI_DATABASE_URL="$pg/imgapi_list" start_server "$d/pg"; pg_url=$URL; pg_pid=$SERVER_PID
  : > "$d/sqlite.rps"; : > "$d/pg.rps"
  sync; sleep 5   # the seeding's writeback and autovacuum settle
  while IFS='|' read -r label q; do
    [ -z "$label" ] && continue
    local path backend url out rps p99 non2xx
    q=${q//@O0/$o0}; q=${q//@O1/$o1}; q=${q//@MID/$mid}
    if [ "$q" = GET ]; then path="/images/$one"; else path="/images?$q"; fi
    for backend in sqlite pg; do
      if [ "$backend" = pg ]; then url=$pg_url; else url=$sq_url; fi
      out=$(wrk -t2 -c32 -d"${dur}s" --latency "$url$path")
      rps=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
      p99=$(ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
      non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
      [ -n "$non2xx" ] && { echo "$backend $label: $non2xx non-2xx answers" >&2; exit 1; }
      echo "$label|$rps|$p99|$(curl -sf "$url$path" | md5sum | cut -c1-12)" >> "$d/$backend.rps"
    done
  done < <({ echo "GetImage|GET"; list_queries | grep -v 'limit=1000'; } | grep -E "^(GetImage|unfiltered)|${LIST_ONLY:-.}")
  kill "$sq_pid" "$pg_pid"; wait "$sq_pid" "$pg_pid" 2>/dev/null || true
  unset IMGAPI_DATABASE_URL IMGAPI_CONFIG
  printf '%-34s %9s %6s %9s %6s %7s %s\n' query "SQLite/s" "x base" "PG/s" "x base" "PG/SQL" "goals (>= 0.5x; same body)"
  paste -d'|' "$d/sqlite.rps" "$d/pg.rps" | awk -F'|' '
    NR == 2 { sb = $2; pb = $6 }
    { rows[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        split(rows[i], f, "|")
        rs = (i == 1) ? "" : sprintf("%.2f", f[2] / sb); rp = (i == 1) ? "" : sprintf("%.2f", f[6] / pb)
        r = f[6] / f[2]
        ok = (r >= 0.5 && (i == 1 || (f[2] / sb >= 0.5 && f[6] / pb >= 0.5)) && f[4] == f[8]) ? "ok" : "MISSED"
        printf "%-34s %9.0f %6s %9.0f %6s %6.2fx %s\n", f[1], f[2], rs, f[6], rp, r, ok
      }
    }'
}

# The lifecycle policy's plan over LIFECYCLE_IMAGES images (default
# 100 000, seeded as for the ListImages section; goal: under 5 s, bounded
# memory): `imgapi lifecycle plan --json` with three rules that between
# them take most images (a download age, keep-newest per name, a
# publication age with a tag), timed with its peak RSS, best of 3.
lifecycle_bench() {
  local n=${LIFECYCLE_IMAGES:-100000} d=$WORK/lifecycle
  command -v sqlite3 > /dev/null || { echo "the sqlite3 CLI is needed: apt-get install sqlite3" >&2; exit 1; }
  mkdir -p "$d"
  start_server "$d/data"; kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  list_seed "$d/data/imgapi.sqlite" "$n" 50 500 > /dev/null
  start_server "$d/data"; kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  cat > "$d/cfg.toml" <<'TOML'
[lifecycle]
[[lifecycle.rules]]
rule = "cold"
name = "~img1"
not_downloaded_days = 90
[[lifecycle.rules]]
rule = "keep3"
keep_newest = 3
type = "zvol"
[[lifecycle.rules]]
rule = "old-apps"
tag = "role=app"
published_days = 365
TOML
  python3 - "$BIN" "$d" "$n" <<'PY'
import json, resource, subprocess, sys, time
bin, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
best = None
for _ in range(3):
    t = time.time()
    out = subprocess.run([bin, "--config", d + "/cfg.toml", "--data-dir", d + "/data", "lifecycle", "plan", "--json"],
                         check=True, capture_output=True).stdout
    s = time.time() - t
    best = s if best is None else min(best, s)
plan = json.loads(out)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("lifecycle: plan over %d images: %.2f s (best of 3; goal < 5 s), peak RSS %.0f MiB; %d steps (%s), %d protected"
      % (n, best, rss, len(plan["steps"]),
         ", ".join("%s %d" % (r, sum(1 for s in plan["steps"] if s["rule"] == r)) for r in ("cold", "keep3", "old-apps")),
         plan["protected"]))
PY
}

# GetImageFile from the page cache against nginx (issue 26; goals: >= 1.0x
# nginx for 1 stream and DL_STREAMS streams of one file and of as many
# files, CPU per GiB <= 1.2x nginx's, flat memory). One imgapi (SQLite,
# local store) holds DL_STREAMS images of DL_MIB MiB each; nginx
# (2 workers, sendfile on, as Debian ships it) serves the same files from
# the same directory. Files are read once first so that both serve from the
# page cache; one stream downloads its file 8 times in a row on one
# connection, so that CPU time (in clock ticks) is measurable. scripts/download_bench.py runs the rounds (curl clients) and
# reads CPU from /proc. Then the S3 store: GetImageFile of a DL_MIB image
# in s3s-fs without redirect against a plain GET of the same object by
# curl (its presigned URL), best of DL_ROUNDS (goal >= 0.9x), peak RSS.
download_bench() {
  [ "${DL_PART:-}" = s3 ] || download_local_bench
  [ "${DL_PART:-}" = local ] || download_s3_bench
}

download_local_bench() {
  local mib=${DL_MIB:-256} n=${DL_STREAMS:-32} rounds=${DL_ROUNDS:-3} d=$WORK/download i
  command -v nginx > /dev/null || { echo "nginx is needed: apt-get install nginx" >&2; exit 1; }
  mkdir -p "$d/tmp"
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$d/image.bin"
  start_server "$d/data"
  local owner=ba28f844-8cb4-f141-882d-46d6251e6a9f uuid
  : > "$d/imgapi.urls"; : > "$d/nginx.urls"
  local nport=$((20000 + RANDOM % 20000))
  for i in $(seq "$n"); do
    uuid=$(curl -sf -XPOST "$URL/images" -H 'content-type: application/json' \
      -d "{\"name\":\"dl$i\",\"version\":\"1.0.0\",\"os\":\"linux\",\"type\":\"other\",\"owner\":\"$owner\",\"public\":true}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
    curl -sf -XPUT -T "$d/image.bin" -H 'content-type: application/octet-stream' "$URL/images/$uuid/file?compression=none" > /dev/null
    curl -sf -XPOST "$URL/images/$uuid?action=activate" -H 'content-type: application/json' -d '{}' > /dev/null
    echo "$URL/images/$uuid/file" >> "$d/imgapi.urls"
    echo "http://127.0.0.1:$nport/images/${uuid:0:3}/$uuid/file0" >> "$d/nginx.urls"
  done
  cat "$d/data/local/images"/*/*/file0 > /dev/null
  cat > "$d/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/nginx.err;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 2048; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
  server { listen 127.0.0.1:$nport; root $d/data/local; }
}
NGINX
  nginx -c "$d/nginx.conf" -p "$d" &
  local nginx_pid=$!
  wait_port "$nport"
  sleep 0.5
  local pids
  pids=$(echo "$nginx_pid" $(pgrep -P "$nginx_pid") | tr ' ' ,)
  cmp <(curl -sf "$(head -1 "$d/imgapi.urls")") <(curl -sf "$(head -1 "$d/nginx.urls")") \
    || { echo "imgapi and nginx serve different bytes" >&2; exit 1; }
  DL_MANY=${DL_MANY:-256} python3 scripts/download_bench.py "$mib" "$rounds" "$n" "$SERVER_PID" "$d/imgapi.urls" "$pids" "$d/nginx.urls"
  kill "$nginx_pid" "$SERVER_PID"; wait "$nginx_pid" "$SERVER_PID" 2>/dev/null || true
  rm -rf "$d/data"
}

download_s3_bench() {
  local mib=${DL_MIB:-256} rounds=${DL_ROUNDS:-3} d=$WORK/download
  local owner=ba28f844-8cb4-f141-882d-46d6251e6a9f uuid
  mkdir -p "$d"
  [ -f "$d/image.bin" ] || head -c $((mib * 1024 * 1024)) /dev/urandom > "$d/image.bin"
  local s3port=$((20000 + RANDOM % 20000)) s3pid
  s3pid=$(scripts/s3-server.sh start "$d/s3data" "$s3port")
  cat > "$d/s3.toml" <<TOML
[storage.manta]
type = "s3"
endpoint = "http://127.0.0.1:$s3port"
bucket = "imgapidl"
access_key_id = "imgapi-test"
secret_access_key = "imgapi-test-secret"
[downloads]
redirect = true
TOML
  "$BIN" --config "$d/s3.toml" serve --listen 127.0.0.1:0 --data-dir "$d/s3node" > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do URL=$(sed -n 's/^imgapi listening on //p' "$WORK/server.out"); [ -n "$URL" ] && break; sleep 0.1; done
  uuid=$(curl -sf -XPOST "$URL/images" -H 'content-type: application/json' \
    -d "{\"name\":\"dls3\",\"version\":\"1.0.0\",\"os\":\"linux\",\"type\":\"other\",\"owner\":\"$owner\",\"public\":true}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
  curl -sf -XPUT -T "$d/image.bin" -H 'content-type: application/octet-stream' "$URL/images/$uuid/file?compression=none&storage=manta" > /dev/null
  curl -sf -XPOST "$URL/images/$uuid?action=activate" -H 'content-type: application/json' -d '{}' > /dev/null
  local presigned best_i=0 best_s=0 r a b
  presigned=$(curl -sf -o /dev/null -w '%{redirect_url}' "$URL/images/$uuid/file?redirect=true")
  [ -n "$presigned" ] || { echo "no presigned URL for the S3 image" >&2; exit 1; }
  cmp <(curl -sf "$URL/images/$uuid/file") <(curl -sf "$presigned") || { echo "imgapi and S3 serve different bytes" >&2; exit 1; }
  dlrate() { curl -sf -o /dev/null -w '%{speed_download}' "$1" | awk '{ printf "%.1f", $1 / 1048576 }'; }
  for r in $(seq "$rounds"); do
    a=$(dlrate "$URL/images/$uuid/file"); b=$(dlrate "$presigned")
    echo "download: S3 round $r: GetImageFile $a MiB/s, plain GET $b MiB/s"
    best_i=$(awk -v x="$best_i" -v y="$a" 'BEGIN { print (y > x) ? y : x }')
    best_s=$(awk -v x="$best_s" -v y="$b" 'BEGIN { print (y > x) ? y : x }')
  done
  awk -v i="$best_i" -v s="$best_s" -v m="$mib" -v rss="$(hwm_mib "$SERVER_PID")" 'BEGIN {
    printf "download: from S3 (s3s-fs), %d MiB: GetImageFile %.1f MiB/s, plain GET of the object (curl, presigned) %.1f MiB/s: %.2fx (goal >= 0.9) %s; imgapi peak RSS %.1f MiB\n",
      m, i, s, i / s, (i >= 0.9 * s) ? "ok" : "MISSED", rss }'
  kill "$SERVER_PID" "$s3pid"; wait "$SERVER_PID" 2>/dev/null || true
}

# What counting downloads costs GetImageFile (issue 24, goal: at most 2 %
# of its req/s on small files): one server with `[downloads] stats` on
# (the default) and one with it off, the same build, each with a 4 KiB
# image file; wrk (2 threads, 32 connections) on each in turn, DL_ROUNDS
# rounds of DL_SECS seconds, best round of each.
download_stats_bench() {
  local secs=${DL_SECS:-5} rounds=${DL_ROUNDS:-3} d=$WORK/dlstats mode
  command -v wrk > /dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
  mkdir -p "$d"
  head -c 4096 /dev/urandom > "$d/small.bin"
  declare -A url pid file
  for mode in on off; do
    printf '[downloads]\nstats = %s\n' "$([ $mode = on ] && echo true || echo false)" > "$d/$mode.toml"
    "$BIN" --config "$d/$mode.toml" serve --listen 127.0.0.1:0 --data-dir "$d/$mode" > "$d/$mode.out" 2> "$d/$mode.err" &
    pid[$mode]=$!
    for _ in $(seq 100); do url[$mode]=$(sed -n 's/^imgapi listening on //p' "$d/$mode.out"); [ -n "${url[$mode]}" ] && break; sleep 0.1; done
    local u=${url[$mode]} uuid
    uuid=$(curl -sf -XPOST "$u/images" -H 'content-type: application/json' \
      -d '{"name":"small","version":"1.0.0","os":"linux","type":"other","owner":"ba28f844-8cb4-f141-882d-46d6251e6a9f","public":true}' \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
    curl -sf -XPUT -T "$d/small.bin" -H 'content-type: application/octet-stream' "$u/images/$uuid/file?compression=none" > /dev/null
    curl -sf -XPOST "$u/images/$uuid?action=activate" -H 'content-type: application/json' -d '{}' > /dev/null
    file[$mode]="$u/images/$uuid/file"
  done
  local best_on=0 best_off=0 r rps
  for r in $(seq "$rounds"); do
    for mode in on off; do
      rps=$(wrk -t2 -c32 -d"${secs}s" "${file[$mode]}" | awk '/^Requests\/sec:/ {print $2}')
      echo "round $r: counting $mode: $rps req/s"
      if [ $mode = on ]; then best_on=$(awk -v a="$best_on" -v b="$rps" 'BEGIN { print (b > a) ? b : a }')
      else best_off=$(awk -v a="$best_off" -v b="$rps" 'BEGIN { print (b > a) ? b : a }'); fi
    done
  done
  kill -TERM "${pid[on]}" "${pid[off]}"; wait "${pid[on]}" "${pid[off]}" 2>/dev/null || true
  # The counts reached the database (the last of them at the stop).
  local counted=?
  command -v sqlite3 > /dev/null && counted=$(sqlite3 "$d/on/imgapi.sqlite" 'SELECT coalesce(sum(count), 0) FROM image_downloads')
  echo "download-stats: downloads counted in the database: $counted"
  awk -v on="$best_on" -v off="$best_off" 'BEGIN {
    c = (1 - on / off) * 100
    printf "download-stats: GetImageFile of 4 KiB, best of rounds: counting on %.0f req/s, off %.0f req/s: %.1f %% cost (goal <= 2 %%) %s\n", on, off, c, (c <= 2) ? "ok" : "MISSED" }'
}

# 1, 2 and 3 nodes over one PostgreSQL database and shared directory
# stores, each client talking to node i % N (what a round-robin proxy
# does, without the proxy's own cost): the aggregate of 2 x N concurrent
# uploads of NODES_MIB each (all started at once), and ListImages req/s
# (one wrk per node, 16 connections each, NODES_SECS, summed). The machine
# has 2 cores, shared by the nodes, PostgreSQL and the clients, so figures
# are also given per core.
cluster_nodes_bench() {
  local mib=${NODES_MIB:-256} secs=${NODES_SECS:-5} d=$WORK/nodes pg_port=55491
  mkdir -p "$d"
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$d/file.bin"
  PG_NODES_DIR=$(mktemp -d /tmp/imgapi-bench-pg.XXXXXX)
  trap 'scripts/pg-server.sh stop "$PG_NODES_DIR" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK" "$PG_NODES_DIR"' EXIT
  scripts/pg-server.sh start "$PG_NODES_DIR" "$pg_port" > /dev/null
  local n i url pids urls t0 t1 total rps
  for n in 1 2 3; do
    psql -X -q "postgres://postgres@127.0.0.1:$pg_port/postgres" -c "CREATE DATABASE nodes_$n"
    rm -rf "$d/shared"; mkdir -p "$d/shared/manta" "$d/shared/assets"
    printf '[database]\nurl = "postgres://postgres@127.0.0.1:%s/nodes_%s"\n[storage.manta]\ntype = "fs"\ndir = "%s"\n[storage.assets]\ndir = "%s"\n' \
      "$pg_port" "$n" "$d/shared/manta" "$d/shared/assets" > "$d/cfg.toml"
    pids=(); urls=()
    for i in $(seq "$n"); do
      "$BIN" --config "$d/cfg.toml" serve --listen 127.0.0.1:0 --data-dir "$d/node$i" > "$d/node$i.out" 2> "$d/node$i.err" &
      pids+=($!)
    done
    for i in $(seq "$n"); do
      for _ in $(seq 100); do url=$(sed -n 's/^imgapi listening on //p' "$d/node$i.out"); [ -n "$url" ] && break; sleep 0.1; done
      urls+=("$url")
    done
    rm -rf "$d/start"; mkdir -p "$d/start"
    local clients=$((2 * n)) waitfor=()
    for i in $(seq 0 $((clients - 1))); do
      BENCH_START_DIR=$d/start python3 scripts/tus_bench_client.py upload "${urls[$((i % n))]}/uploads" "$d/file.bin" 64 > "$d/up.$i" &
      waitfor+=($!)
    done
    while [ "$(ls "$d/start" | grep -c '^ready')" -lt "$clients" ]; do sleep 0.01; done
    sync
    t0=$(now); touch "$d/start/go"
    wait "${waitfor[@]}"
    t1=$(now)
    total=$(awk -v m="$mib" -v c="$clients" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", m * c / (b - a) }')
    python3 - "${urls[0]}" 500 <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1]); c = http.client.HTTPConnection(u.hostname, u.port)
for i in range(int(sys.argv[2])):
    c.request("POST", "/images", json.dumps({"name": "img%d" % (i % 50), "version": "1.0.%d" % i,
        "os": "smartos", "type": "zone-dataset", "owner": "ba28f844-8cb4-f141-882d-46d6251e6a9f"}),
        {"content-type": "application/json"})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
PY
    : > "$d/rps"; waitfor=()
    for url in "${urls[@]}"; do
      wrk -t1 -c16 -d"${secs}s" "$url/images?limit=100&state=all" > "$d/wrk.${url##*:}" 2>/dev/null &
      waitfor+=($!)
    done
    wait "${waitfor[@]}"
    cat "$d"/wrk.* | awk '/Requests\/sec/ {print $2}' >> "$d/rps"; rm -f "$d"/wrk.*
    rps=$(awk '{s += $1} END {printf "%.0f", s}' "$d/rps")
    echo "nodes: $n node(s): $clients concurrent uploads of $mib MiB: $total MiB/s aggregate ($(awk -v t="$total" 'BEGIN{printf "%.1f", t/2}') per core); ListImages limit=100 over 500 images: $rps req/s ($(awk -v r="$rps" 'BEGIN{printf "%.0f", r/2}') per core)"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$d/shared" "$d"/node*
  done
}

case "$ONLY_SECTION" in
  download) download_bench; exit 0 ;;
  download-stats) download_stats_bench; exit 0 ;;
  lifecycle) lifecycle_bench; exit 0 ;;
  nodes) cluster_nodes_bench; exit 0 ;;
  cluster) cluster_bench; exit 0 ;;
  cluster-list) cluster_list_bench; exit 0 ;;
  parallel) parallel_bench; exit 0 ;;
  concurrent) concurrent_bench; exit 0 ;;
esac

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

echo
echo "== tus uploads: ${TUS_MIB} MiB over loopback in 64 MiB PATCHes on one keep-alive connection"
TFILE=$WORK/tus.bin
head -c $((TUS_MIB * 1024 * 1024)) "$FILE" > "$TFILE"
SIZE_MIB_SAVED=$SIZE_MIB; SIZE_MIB=$TUS_MIB
CLIENT="python3 scripts/tus_bench_client.py"

# Peers: @tus/server + @tus/file-store (npm) and rustus (crates.io).
if [ ! -d target/bench-node/node_modules/@tus/file-store ]; then
  mkdir -p target/bench-node
  (cd target/bench-node && npm init -y >/dev/null && npm install --no-audit --no-fund @tus/server @tus/file-store >/dev/null)
fi
cp scripts/tus-node-server.mjs target/bench-node/
if [ ! -x target/bench-tools/bin/rustus ]; then
  cargo install --locked rustus@0.5.10 --root target/bench-tools >/dev/null 2>&1
fi
mkdir -p "$WORK/tusnode" "$WORK/rustus-default" "$WORK/rustus-fsync"
node target/bench-node/tus-node-server.mjs 18931 "$WORK/tusnode" > /dev/null 2>&1 &
PEER_PIDS="$!"
for mode in default fsync; do
  extra=(); RPORT=18932; [ "$mode" = fsync ] && { extra=(--force-fsync true); RPORT=18933; }
  # rustus reads a whole PATCH body into memory: allow 64 MiB ones
  target/bench-tools/bin/rustus --host 127.0.0.1 --port "$RPORT" --data-dir "$WORK/rustus-$mode" \
    --info-dir "$WORK/rustus-$mode" --max-body-size $((65 * 1024 * 1024)) "${extra[@]}" > /dev/null 2>&1 &
  PEER_PIDS="$PEER_PIDS $!"
done
wait_port 18931; wait_port 18932; wait_port 18933
rm -rf "$WORK/data"; start_server

# Rounds: md5sum, imgapi and each peer in turn on the same file, so that
# whatever else the machine is doing affects all of them alike; each ratio
# is taken within a round, and the median of the rounds is reported. Every
# upload starts with no dirty data in the page cache (sync before), and is
# timed twice: until the server acknowledged the last PATCH, and until the
# bytes are on disk (plus a sync right after; for imgapi and rustus
# --force-fsync, which fsync before acknowledging, the two are the same).
ROUNDS=3
up() { read -r T U < <($CLIENT upload "$1" "$TFILE" 64); echo "$T $U"; }
up_sync() {
  local t u s
  sync
  read -r t u < <(up "$1")
  s=$(timed sync)
  echo "$t $(awk -v a="$t" -v b="$s" 'BEGIN { printf "%.3f", a + b }') $u"
}
: > "$WORK/rounds"
for r in $(seq $ROUNDS); do
  M=$(timed md5sum "$TFILE")
  read -r I ID UP_URL < <(up_sync "$URL/uploads")
  read -r N ND _ < <(up_sync "http://127.0.0.1:18931/files")
  read -r RD RDD _ < <(up_sync "http://127.0.0.1:18932/files/")
  read -r RF RFD _ < <(up_sync "http://127.0.0.1:18933/files/")
  echo "$M $I $N $ND $RD $RDD $RF $ID" >> "$WORK/rounds"
  echo "round $r: md5sum $(mibps "$M"); acknowledged / on disk: imgapi $(mibps "$I") / $(mibps "$ID"), @tus/server $(mibps "$N") / $(mibps "$ND"), rustus $(mibps "$RD") / $(mibps "$RDD"), rustus --force-fsync $(mibps "$RF") / $(mibps "$RFD") MiB/s"
  # keep the disk from filling: only imgapi's last upload is used below
  [ "$r" -lt $ROUNDS ] && curl -sf -XDELETE -H 'Tus-Resumable: 1.0.0' "$UP_URL" > /dev/null
  rm -rf "${WORK:?}"/tusnode/* "${WORK:?}"/rustus-default/* "${WORK:?}"/rustus-fsync/*
done
kill $PEER_PIDS 2>/dev/null || true
UP_RSS=$(hwm_mib "$SERVER_PID")
GOT=$(curl -sf "$UP_URL/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha1"])')
WANT=$(sha1sum "$TFILE" | cut -c1-40)
[ "$GOT" = "$WANT" ] || { echo "sha1 mismatch: $GOT != $WANT" >&2; exit 1; }
# median of a column (1-based), and of the ratio column a / column b
med() { awk -v c="$1" '{print $c}' "$WORK/rounds" | sort -g | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }
medr() { awk -v a="$1" -v b="$2" '{printf "%.3f\n", $a / $b}' "$WORK/rounds" | sort -g | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }
TMD5_S=$(med 1); UP_S=$(med 2)
echo "md5sum:          $(mibps "$TMD5_S") MiB/s (median of $ROUNDS rounds)"
echo "imgapi:          $(mibps "$UP_S") MiB/s = $(medr 1 2) x md5sum (goal >= 0.8; median of the rounds' ratios); md5+sha1 computed, fsync per PATCH; peak RSS ${UP_RSS} MiB (goal < 64)"
echo "@tus/server:     $(mibps "$(med 3)") MiB/s acknowledged, $(mibps "$(med 4)") MiB/s on disk (no hashing, no fsync); imgapi = $(medr 3 2) x @tus/server as acknowledged (goal >= 2), $(medr 4 8) x on disk"
echo "rustus:          $(mibps "$(med 5)") MiB/s acknowledged, $(mibps "$(med 6)") MiB/s on disk (no hashing, no fsync); imgapi = $(medr 5 2) x, $(medr 6 8) x on disk"
echo "rustus (fsync):  $(mibps "$(med 7)") MiB/s (no hashing, --force-fsync); imgapi = $(medr 7 2) x rustus --force-fsync"
echo "bound:           md5sum / @tus/server = $(medr 3 1): no server that computes MD5 as bytes arrive can beat md5sum, so this is the most any such server could reach against @tus/server here"

if [ -d /dev/shm ]; then
  # The same upload with the data directory in memory: what the CPU path
  # does when the disk is not the limit.
  SHM=$(mktemp -d /dev/shm/imgapi-bench.XXXXXX)
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  start_server "$SHM/data"
  read -r SHM_S _ < <($CLIENT upload "$URL/uploads" "$TFILE" 64)
  echo "imgapi (tmpfs): $(mibps "$SHM_S") MiB/s = $(ratio "$TMD5_S" "$SHM_S") x md5sum (data dir in memory: no disk in the way)"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$SHM"
  start_server "$WORK/data"
fi
echo "-- registration of the finished upload (fast path: digests recorded while uploading)"
UP_ID=${UP_URL##*/}
TMD5_B64=$(openssl md5 -binary "$TFILE" | base64)
t0=$(now)
curl -sf -XPOST "$URL/images" -H 'content-type: application/json' -d "{\"name\":\"reg\",\"version\":\"1\",\"os\":\"linux\",\"type\":\"other\",\"owner\":\"ba28f844-8cb4-f141-882d-46d6251e6a9f\",\"files\":[{\"upload\":\"$UP_ID\",\"content_md5\":\"$TMD5_B64\",\"compression\":\"none\"}]}" > "$WORK/reg.json"
t1=$(now); REG_S=$(secs "$t0" "$t1")
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["state"]=="active", d' "$WORK/reg.json"
echo "register (fast): $(awk -v t="$REG_S" 'BEGIN{printf "%.1f", t*1000}') ms = $(ratio "$REG_S" "$TMD5_S") x md5sum time (goal < 0.05)"

echo "-- registration of an object put in the store by another tool (slow path: streamed once)"
OBJ_DIR="$WORK/data/manta/ba28f844-8cb4-f141-882d-46d6251e6a9f/stor"
mkdir -p "$OBJ_DIR"; cp "$TFILE" "$OBJ_DIR/obj.img"; sync
t0=$(now)
curl -sf -XPOST "$URL/images" -H 'content-type: application/json' -d "{\"name\":\"reg2\",\"version\":\"1\",\"os\":\"linux\",\"type\":\"other\",\"owner\":\"ba28f844-8cb4-f141-882d-46d6251e6a9f\",\"files\":[{\"path\":\"/ba28f844-8cb4-f141-882d-46d6251e6a9f/stor/obj.img\",\"content_md5\":\"$TMD5_B64\",\"compression\":\"none\"}]}" > "$WORK/reg2.json"
t1=$(now); REG2_S=$(secs "$t0" "$t1")
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["state"]=="active", d' "$WORK/reg2.json"
echo "register (slow): $(mibps "$REG2_S") MiB/s = $(ratio "$TMD5_S" "$REG2_S") x md5sum (verify + copy into the image's location)"

echo "-- resume latency after kill -9 and restart (HEAD + one 1 MiB PATCH)"
for frac in 0.1 0.9; do
  read -r _ R_URL < <($CLIENT upload "$URL/uploads" "$TFILE" 64 "$frac")
  PORT=${URL##*:}
  kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  start_server "$WORK/data" "127.0.0.1:$PORT"
  read -r MS OFF < <($CLIENT resume "$R_URL" "$TFILE" 1)
  echo "resume at $(awk -v f="$frac" 'BEGIN{printf "%d%%", f*100}') (offset $OFF): ${MS} ms"
done
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

echo
echo "== S3 store: ${TUS_MIB} MiB into an S3 server (s3s-fs on loopback) through imgapi vs the AWS CLI"
if [ ! -x target/bench-venv/bin/aws ]; then
  python3 -m venv target/bench-venv
  target/bench-venv/bin/pip install --quiet --disable-pip-version-check awscli
fi
S3PORT=18940
S3PID=$(scripts/s3-server.sh start "$WORK/s3data" "$S3PORT")
export AWS_ACCESS_KEY_ID=imgapi-test AWS_SECRET_ACCESS_KEY=imgapi-test-secret AWS_DEFAULT_REGION=us-east-1
AWS="target/bench-venv/bin/aws --endpoint-url http://127.0.0.1:$S3PORT"
$AWS s3 mb s3://awsbench > /dev/null
cat > "$WORK/s3.toml" <<TOML
[storage.manta]
type = "s3"
endpoint = "http://127.0.0.1:$S3PORT"
bucket = "imgapibench"
access_key_id = "imgapi-test"
secret_access_key = "imgapi-test-secret"
part_size_mib = 16
parts_in_flight = 4
TOML
rm -rf "$WORK/data"
"$BIN" --config "$WORK/s3.toml" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do URL=$(sed -n 's/^imgapi listening on //p' "$WORK/server.out"); [ -n "$URL" ] && break; sleep 0.1; done
# Rounds again: the AWS CLI, a tus upload and an AddImageFile in turn.
: > "$WORK/rounds"
for r in $(seq $ROUNDS); do
  A=$(timed $AWS s3 cp "$TFILE" s3://awsbench/image.bin)
  read -r T S3UP_URL < <(up "$URL/uploads")
  UUID=$(curl -sf -XPOST "$URL/images" -H 'content-type: application/json' \
    -d '{"name":"s3bench","version":"1.0.0","os":"linux","type":"other","owner":"ba28f844-8cb4-f141-882d-46d6251e6a9f"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
  P=$(timed curl -sf -XPUT -T "$TFILE" -H 'content-type: application/octet-stream' "$URL/images/$UUID/file?compression=none")
  echo "$A $T $P" >> "$WORK/rounds"
  echo "round $r: aws s3 cp $(mibps "$A"), imgapi tus $(mibps "$T"), AddImageFile $(mibps "$P") MiB/s"
  curl -sf -XDELETE -H 'Tus-Resumable: 1.0.0' "$S3UP_URL" > /dev/null
  curl -sf -XDELETE "$URL/images/$UUID" > /dev/null
done
S3_RSS=$(hwm_mib "$SERVER_PID")
echo "aws s3 cp:       $(mibps "$(med 1)") MiB/s (multipart, 8 MiB parts, 10 in flight; no md5/sha1 of the file)"
echo "imgapi tus:      $(mibps "$(med 2)") MiB/s = $(medr 1 2) x aws s3 cp (goal >= 0.8); md5+sha1, staged + fsynced locally, 16 MiB parts sent while each PATCH streams in"
echo "AddImageFile:    $(mibps "$(med 3)") MiB/s = $(medr 1 3) x aws s3 cp (streamed straight into a multipart upload, 4 parts in flight)"
echo "server peak RSS: ${S3_RSS} MiB over all rounds (goal <= 16x4+64 = 128)"
kill "$SERVER_PID" "$S3PID"; wait "$SERVER_PID" 2>/dev/null || true

echo
echo "== client verbs: publish, file get, import-remote"
bench_client
echo
list_bench
echo
parallel_bench
echo
concurrent_bench
