//! Real, unchanged tus clients against `/uploads`.
//!
//! Each test starts the server, writes a ~5 MiB file and runs one script
//! that uploads it in 1 MiB chunks, interrupts an upload and resumes it, and
//! checks the result through `GET /uploads/{id}/info`:
//!
//! - `tests/tus/tus_js.js` with tus-js-client (pinned in
//!   `tests/tus/package-lock.json`; `npm ci` runs when
//!   `tests/tus/node_modules` lacks it);
//! - `tests/tus/tuspy_upload.py` with tuspy (pinned in
//!   `tests/tus/requirements.txt`), run by `$IMGAPI_TEST_PYTHON` if set,
//!   else by `target/tus-venv/bin/python`, a venv this test creates and
//!   fills with `pip install -r tests/tus/requirements.txt` when needed.
//!
//! Node.js/npm and Python (with venv and pip) are required: without them, or
//! when an install fails, these tests fail; they never skip.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

const MIB: usize = 1024 * 1024;
/// Not a multiple of the 1 MiB chunk size, so the last chunk is short.
const FILE_SIZE: usize = 5 * MIB + 12_345;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tus_dir() -> PathBuf {
    root().join("tests/tus")
}

/// Runs `program args` in `cwd` with a time limit; panics (with `what`) if
/// it cannot be started or does not finish in time.
async fn run<I, S>(
    what: &str,
    program: impl AsRef<OsStr>,
    args: I,
    cwd: &Path,
    envs: &[(&str, &OsStr)],
    limit: Duration,
) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        c.env(k, v);
    }
    tokio::time::timeout(limit, c.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {} s", limit.as_secs()))
        .unwrap_or_else(|e| panic!("cannot run {} ({what}): {e}", program.to_string_lossy()))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_ok(what: &str, out: &Output) {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Writes the file the scripts upload; returns its directory (keep it alive).
fn write_file(seed: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("upload.bin");
    std::fs::write(&path, common::data(FILE_SIZE, seed)).expect("write upload file");
    (dir, path)
}

/// Runs a client script against a fresh server and asserts it passed.
async fn run_script(what: &str, program: &Path, script: &str, seed: u32) {
    let s = common::Server::start().await;
    let (_dir, file) = write_file(seed);
    let out = run(
        what,
        program,
        [script],
        root(),
        &[
            ("IMGAPI_URL", OsStr::new(&s.url)),
            ("FILE", file.as_os_str()),
        ],
        // The scripts have their own 60 s limit; this is a backstop.
        Duration::from_secs(120),
    )
    .await;
    let (stdout, stderr) = text(&out);
    println!("{stdout}");
    if !stderr.is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("ok ")),
        "{what} ran no check:\n{stdout}"
    );
}

/// Make sure `tests/tus/node_modules` holds the pinned tus-js-client.
async fn ensure_node_modules() {
    let dir = tus_dir();
    let marker = dir.join("node_modules/tus-js-client/package.json");
    if marker.is_file() {
        return;
    }
    let out = run(
        "`npm ci` in tests/tus (is Node.js/npm installed?)",
        "npm",
        ["ci", "--no-audit", "--no-fund"],
        &dir,
        &[],
        Duration::from_secs(600),
    )
    .await;
    assert_ok("`npm ci` in tests/tus", &out);
    assert!(
        marker.is_file(),
        "`npm ci` succeeded but tests/tus/node_modules/tus-js-client is missing"
    );
}

/// The Python interpreter that has tuspy: `$IMGAPI_TEST_PYTHON`, or the
/// project's own venv under `target/`, created and filled when needed.
async fn python_with_tuspy() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGAPI_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root().join("target/tus-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let out = run(
            "`python3 -m venv target/tus-venv` (is Python 3 with venv installed?)",
            "python3",
            [OsStr::new("-m"), OsStr::new("venv"), venv.as_os_str()],
            root(),
            &[],
            Duration::from_secs(300),
        )
        .await;
        assert_ok("`python3 -m venv target/tus-venv`", &out);
        assert!(
            python.exists(),
            "venv made but {} is missing",
            python.display()
        );
    }
    // Install (again) when the venv was never filled or the pins changed.
    let requirements = tus_dir().join("requirements.txt");
    let wanted = std::fs::read(&requirements).expect("read tests/tus/requirements.txt");
    let stamp = venv.join("imgapi-requirements.txt");
    if std::fs::read(&stamp).ok().as_deref() != Some(&wanted[..]) {
        let out = run(
            "`pip install -r tests/tus/requirements.txt` into target/tus-venv",
            &python,
            [
                OsStr::new("-m"),
                OsStr::new("pip"),
                OsStr::new("install"),
                OsStr::new("--disable-pip-version-check"),
                OsStr::new("-r"),
                requirements.as_os_str(),
            ],
            root(),
            &[],
            Duration::from_secs(600),
        )
        .await;
        assert_ok("`pip install -r tests/tus/requirements.txt`", &out);
        std::fs::write(&stamp, &wanted).expect("write venv stamp");
    }
    python
}

#[tokio::test]
async fn tus_js_client_chunked_and_resumed_uploads() {
    ensure_node_modules().await;
    run_script(
        "tests/tus/tus_js.js (tus-js-client)",
        Path::new("node"),
        "tests/tus/tus_js.js",
        101,
    )
    .await;
}

#[tokio::test]
async fn tuspy_chunked_and_resumed_uploads() {
    let python = python_with_tuspy().await;
    let out = run(
        "python -c 'import tusclient'",
        &python,
        ["-c", "import tusclient"],
        root(),
        &[],
        Duration::from_secs(60),
    )
    .await;
    assert_ok(
        &format!("{} cannot import tuspy (tusclient)", python.display()),
        &out,
    );
    run_script(
        "tests/tus/tuspy_upload.py (tuspy)",
        &python,
        "tests/tus/tuspy_upload.py",
        202,
    )
    .await;
}
