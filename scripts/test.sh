#!/usr/bin/env bash
# Run the whole test suite: unit tests, HTTP tests against the real binary,
# the real Triton Node.js client (sdc-clients) against the server, and
# schemathesis fuzzing of the API from docs/openapi.json (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is required ($2)" >&2; exit 1; }; }
need cargo "the Rust toolchain"
need node "Node.js runs the sdc-clients conformance test"
need npm "npm installs sdc-clients"

need python3 "Python runs the tuspy client test"

# The clients the tests drive: Triton's sdc-clients, tus-js-client, tuspy.
for d in tests/node tests/tus; do
  if [ ! -f "$d/node_modules/.package-lock.json" ]; then
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
if ! cmp -s tests/tus/requirements.txt target/tus-venv/imgapi-requirements.txt; then
  python3 -m venv target/tus-venv
  target/tus-venv/bin/pip install --quiet --disable-pip-version-check -r tests/tus/requirements.txt
  cp tests/tus/requirements.txt target/tus-venv/imgapi-requirements.txt
fi

# A real S3-compatible server on loopback for the S3 store tests.
S3_DIR=$(mktemp -d /tmp/imgapi-s3.XXXXXX)
S3_PORT=${IMGAPI_TEST_S3_PORT:-19000}
S3_PID=$(scripts/s3-server.sh start "$S3_DIR/data" "$S3_PORT")
# A private PostgreSQL on loopback for the PostgreSQL backend's tests.
PG_DIR=$(mktemp -d /tmp/imgapi-pg.XXXXXX)
PG_PORT=${IMGAPI_TEST_PG_PORT:-55400}
trap 'kill "$S3_PID" 2>/dev/null || true; scripts/pg-server.sh stop "$PG_DIR" || true; rm -rf "$S3_DIR" "$PG_DIR"' EXIT
scripts/pg-server.sh start "$PG_DIR" "$PG_PORT" >/dev/null
export IMGAPI_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export IMGAPI_TEST_S3_ACCESS_KEY=imgapi-test IMGAPI_TEST_S3_SECRET_KEY=imgapi-test-secret
export IMGAPI_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

cargo build --release --bin imgapi
status=0
cargo test --workspace --no-fail-fast "$@" || status=1

# The suites that exercise metadata (ListImages, uploads, registration,
# imports, crash recovery, the clients), again with PostgreSQL as the
# database: every server they start gets a database of its own. Not run
# there: the tests that open the SQLite file itself to stage a crash or
# check its mode (they ran above). tests/cluster.rs runs on PostgreSQL in
# the pass above.
PG_SUITES=(accounts admin channels client client_clone client_imports clone concat downloads
  crash_completion hardening_domain hardening_uploads imgapi_suite imports inprocess
  node_client ops redirect registration s3 space tus_clients uploads validate validation_parity)
SQLITE_ONLY=(s3_down_during_recovery_is_503_then_completes
  publish_of_a_session_without_a_crc_checks_the_md5_instead
  completion_cut_short_by_a_crash_is_finished_at_restart
  uuid_shaped_owners_name_only_that_account
  gc_keeps_what_a_registration_in_progress_writes
  store_never_follows_links_out_and_creates_private_files
  token_auth)
# ... and those that look for files where one node keeps them (`stor`
# local, data_dir/local): with PostgreSQL, image files and icons of the
# classic flow go to the manta store, which every node reads
# (docs/cluster.md; tests/cluster.rs checks it).
SINGLE_NODE_LAYOUT=(check_files_finds_corrupt_truncated_and_missing_files
  gc_is_a_dry_run_unless_yes change_stor_and_export
  # ... and those that check how one node keeps an upload into S3 (staged
  # on its disk, one multipart upload, partials written in place into
  # their final's staged file, PATCHes acknowledged while S3 is down). A
  # cluster's uploads into S3 are kept in the bucket as pieces instead
  # (docs/cluster.md): tests/cluster.rs `on_s3_*` and tests/s3.rs
  # `session_contract_s3_kept_in_the_store` check that.
  tus_upload_is_one_multipart_upload tus_upload_rides_out_an_s3_outage
  s3_final_first_part_runs_with_kill s3_final_first_unaligned_partials)
echo "=== the metadata suites again, on PostgreSQL"
# (One test binary, tests/suite.rs: a suite is the module of its name.)
IMGAPI_TEST_BACKEND=postgres cargo test --no-fail-fast --test suite -- \
  $(printf -- '%s:: ' "${PG_SUITES[@]}") \
  $(printf -- '--skip %s ' "${SQLITE_ONLY[@]}" "${SINGLE_NODE_LAYOUT[@]}") || status=1

scripts/fuzz.sh || status=1
exit $status
