//! What an operator installs around the server: the shell completions
//! (kept fresh like the man pages), the systemd unit's readiness and stop
//! signal (READY=1 and STOPPING=1 on a `NOTIFY_SOCKET` the test binds), and
//! `imgapi config check`.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgapi"));
    c.env_remove("IMGAPI_CONFIG")
        .env_remove("IMGAPI_LISTEN")
        .env_remove("IMGAPI_DATA_DIR")
        .env_remove("NOTIFY_SOCKET");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// contrib/completions/ holds what `imgapi completions SHELL` prints;
/// `UPDATE_COMPLETIONS=1 cargo test --test suite operator::completions` rewrites it.
#[test]
fn completions_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/completions");
    let mut stale = vec![];
    for (shell, file) in [
        ("bash", "imgapi.bash"),
        ("zsh", "_imgapi"),
        ("fish", "imgapi.fish"),
    ] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        assert!(text(&out.stdout).contains("publish"), "{shell}");
        let path = dir.join(file);
        if std::env::var_os("UPDATE_COMPLETIONS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &out.stdout).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&out.stdout[..]) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "contrib/completions is stale ({stale:?}); run UPDATE_COMPLETIONS=1 cargo test --test suite operator::completions"
    );
}

/// The bash script completes verbs and their flags as a user types them.
#[test]
fn bash_completion_completes() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/completions/imgapi.bash");
    let complete = |words: &str| -> Vec<String> {
        let n = words.split(' ').count() - 1;
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={n}; COMP_LINE='{words}'; \
                 COMP_POINT=${{#COMP_LINE}}; _imgapi imgapi \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        text(&out.stdout).lines().map(String::from).collect()
    };
    assert_eq!(complete("imgapi pub"), ["publish"]);
    let conf = complete("imgapi config ch");
    assert_eq!(conf, ["check"]);
    let flags = complete("imgapi publish --par");
    assert_eq!(flags, ["--parallel"]);
}

/// The unit's value of `key` (the last one given).
fn unit_value(key: &str) -> String {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/imgapi.service"),
    )
    .unwrap();
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("contrib/imgapi.service has no {key}"))
        .trim()
        .to_string()
}

/// systemd's own checks of the unit (its ExecStart pointed at the built
/// binary): `systemd-analyze verify` finds nothing wrong, and `security`
/// rates its exposure at most 2.0 of 10 (it is 1.5).
#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "systemd-analyze is not installed (the systemd package)"
        );
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/imgapi.service"),
    )
    .unwrap()
    .replace("/usr/local/bin/imgapi", env!("CARGO_BIN_EXE_imgapi"));
    let path = tmp.path().join("imgapi.service");
    std::fs::write(&path, unit).unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        text(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(security.status.success(), "{}", text(&security.stdout));
}

/// Type=notify: READY=1 arrives on NOTIFY_SOCKET once the port accepts
/// connections, and the unit's KillSignal stops the server gracefully
/// (STOPPING=1, exit 0).
#[test]
fn systemd_readiness_and_stop_signal() {
    assert_eq!(unit_value("Type"), "notify");
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let port = free_port();
    let mut child = bin()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("IMGAPI_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("no notification from the server");
    let msg = text(&buf[..n]);
    // The listener was open before READY=1 was sent.
    let conn = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(
        conn.is_ok(),
        "READY=1 came before the port accepted connections"
    );
    assert_eq!(msg.lines().collect::<Vec<_>>(), ["READY=1"]);
    drop(conn);

    let sig = unit_value("KillSignal");
    assert_eq!(sig, "SIGTERM", "the signal the server shuts down on");
    let killed = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let n = sock.recv(&mut buf).expect("no STOPPING=1");
    assert_eq!(text(&buf[..n]).trim_end(), "STOPPING=1");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// `imgapi config check` with `args` (and `env`), in `dir`.
fn config_check(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.current_dir(dir).args(["config", "check"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// A good configuration: printed as TOML that loads back into the same
/// configuration (defaults written out), exit 0; flags beat the
/// environment, which beats the file, as for `serve`.
#[test]
fn config_check_prints_the_effective_config() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write(
        tmp.path(),
        "imgapi.toml",
        "listen = \"127.0.0.1:9001\"\n[uploads]\nmax_open_per_account = 7\n",
    );
    let out = config_check(
        tmp.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9003",
        ],
        &[
            ("IMGAPI_LISTEN", "127.0.0.1:9002"),
            ("IMGAPI_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let eff: imgapi::config::Config = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(eff.listen.to_string(), "127.0.0.1:9003");
    assert_eq!(eff.data_dir, data);
    assert_eq!(eff.uploads.max_open_per_account, 7);
    assert_eq!(eff.uploads.max_streaming_per_account, 16);
    assert_eq!(eff.storage.assets.dir, Some(data.join("assets")));
    assert!(
        matches!(&eff.storage.manta, imgapi::config::MantaConfig::Fs { dir: Some(d) } if *d == data.join("manta"))
    );
    // Nothing existed: every directory can be created, and nothing was.
    assert!(
        stderr.contains(&format!(
            "ok: data_dir {}: does not exist yet; serve creates it",
            data.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("ok: database") && stderr.contains("does not exist yet"),
        "{stderr}"
    );
    assert!(!data.exists(), "config check created the data directory");

    // Once a server has run there: the database opens at the current schema.
    bin()
        .args(["migrate", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let out = config_check(tmp.path(), &["--data-dir", data.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("ok: data_dir {}: writable", data.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "ok: database {}: opens; schema version",
            data.join("imgapi.sqlite").display()
        )) && stderr.contains("(current)"),
        "{stderr}"
    );

    // A file that is not a database.
    std::fs::write(data.join("imgapi.sqlite"), vec![7u8; 8192]).unwrap();
    let out = config_check(tmp.path(), &["--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("imgapi: database")
            && text(&out.stderr).contains("not a database"),
        "{}",
        text(&out.stderr)
    );
}

/// A configuration `serve` refuses: the same message and exit code.
#[test]
fn config_check_fails_as_serve_does() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (name, body, listen) in [
        (
            "unknown-key.toml",
            "listen = \"127.0.0.1:9001\"\nfrobnicate = 1\n",
            "127.0.0.1:0",
        ),
        (
            "bad-value.toml",
            "[downloads]\npresign_ttl_secs = 0\n",
            "127.0.0.1:0",
        ),
        ("off-loopback.toml", "", "0.0.0.0:0"),
    ] {
        let cfg = write(tmp.path(), name, body);
        let args = [
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            listen,
        ];
        let check = config_check(tmp.path(), &args, &[]);
        let serve = bin()
            .current_dir(tmp.path())
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(2), "{name}");
        assert_eq!(serve.status.code(), Some(2), "{name}");
        assert_eq!(text(&check.stderr), text(&serve.stderr), "{name}");
        assert!(text(&check.stderr).starts_with("imgapi: "), "{name}");
        assert!(check.stdout.is_empty(), "{name}");
    }
    let cfg = tmp.path().join("unknown-key.toml");
    let out = config_check(tmp.path(), &["--config", cfg.to_str().unwrap()], &[]);
    assert!(text(&out.stderr).contains("unknown field `frobnicate`"));
    // The environment's values are checked as serve checks them.
    let out = config_check(tmp.path(), &[], &[("IMGAPI_LISTEN", "nonsense")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("imgapi: invalid environment variable IMGAPI_LISTEN"),
        "{}",
        text(&out.stderr)
    );
}

/// A directory the server cannot write: named, exit 1, the TOML printed.
#[test]
fn config_check_unwritable_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // Root writes anywhere but in a read-only file system; others not in a
    // 0500 directory.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let locked = if root {
        PathBuf::from("/sys/fs")
    } else {
        let d = tmp.path().join("locked");
        std::fs::create_dir(&d).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o500)).unwrap();
        d
    };
    let assets = locked.join("assets");
    let cfg = write(
        tmp.path(),
        "imgapi.toml",
        &format!("[storage.assets]\ndir = \"{}\"\n", assets.display()),
    );
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = config_check(
        tmp.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // (Permission denied, or a read-only file system.)
    assert!(
        stderr.contains(&format!(
            "imgapi: storage.assets.dir {}: not writable: cannot create a file in {}: ",
            assets.display(),
            locked.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("ok: data_dir {}: writable", data.display())),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("[storage.assets]"));

    // A data directory where a file is.
    let file = write(tmp.path(), "a-file", "x");
    let out = config_check(
        tmp.path(),
        &["--data-dir", file.join("data").to_str().unwrap()],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "imgapi: data_dir {}: {}: Not a directory",
            file.join("data").display(),
            file.join("data").display()
        )),
        "{stderr}"
    );
}

fn s3_toml(endpoint: &str, bucket: &str, access: &str, secret: &str) -> String {
    format!(
        "[storage.manta]\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"{bucket}\"\n\
         access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n"
    )
}

/// An S3 store nobody answers at: named, fast, exit 1; the secret never
/// printed.
#[test]
fn config_check_unreachable_s3_and_redacted_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = "SUPERSECRET-do-not-print-1f3a";
    let cfg = write(
        tmp.path(),
        "imgapi.toml",
        &s3_toml(
            &format!("http://127.0.0.1:{port}"),
            "images",
            "AKID",
            secret,
        ),
    );
    let t0 = Instant::now();
    let out = config_check(
        tmp.path(),
        &["--config", cfg.to_str().unwrap(), "--data-dir", "data"],
        &[],
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "imgapi: storage.manta bucket images at http://127.0.0.1:{port}: cannot reach http://127.0.0.1:{port}: Connection refused"
        )),
        "{stderr}"
    );
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
    assert!(
        stdout.contains("secret_access_key = \"<redacted>\""),
        "{stdout}"
    );
    assert!(stdout.contains("access_key_id = \"AKID\""), "{stdout}");
    // The redacted TOML is still a configuration.
    let eff: imgapi::config::Config = toml::from_str(&stdout).unwrap();
    assert!(matches!(
        eff.storage.manta,
        imgapi::config::MantaConfig::S3(_)
    ));

    // An unreadable secret key file is named.
    let cfg = write(
        tmp.path(),
        "file.toml",
        &format!(
            "[storage.manta]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:{port}\"\nbucket = \"b\"\n\
             access_key_id = \"AKID\"\nsecret_access_key_file = \"{}\"\n",
            tmp.path().join("missing-secret").display()
        ),
    );
    let out = config_check(
        tmp.path(),
        &["--config", cfg.to_str().unwrap(), "--data-dir", "data"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "cannot read secret_access_key_file {}",
            tmp.path().join("missing-secret").display()
        )),
        "{}",
        text(&out.stderr)
    );
}

/// A real S3 server: the bucket is reachable with the credentials (or
/// missing, which serve creates); wrong credentials are refused.
#[tokio::test]
async fn config_check_reaches_s3() {
    let s3 = common::S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let run = |toml: String| {
        let cfg = write(tmp.path(), "imgapi.toml", &toml);
        let out = config_check(
            tmp.path(),
            &["--config", cfg.to_str().unwrap(), "--data-dir", "data"],
            &[],
        );
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let what = format!("storage.manta bucket {} at {}", s3.bucket, s3.endpoint);
    let good = s3_toml(&s3.endpoint, &s3.bucket, &s3.access_key, &s3.secret_key);
    let (code, _, stderr) = run(good.clone());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "ok: {what}: reachable; the bucket does not exist yet, serve creates it"
        )),
        "{stderr}"
    );
    s3.client()
        .create_bucket()
        .bucket(&s3.bucket)
        .send()
        .await
        .unwrap();
    let (code, stdout, stderr) = run(good);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("ok: {what}: reachable\n")),
        "{stderr}"
    );
    assert!(!stdout.contains(&s3.secret_key) && !stderr.contains(&s3.secret_key));

    let (code, _, stderr) = run(s3_toml(&s3.endpoint, &s3.bucket, &s3.access_key, "wrong"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("imgapi: {what}: ")), "{stderr}");
    assert!(!stderr.contains("wrong"), "{stderr}");
}

/// With a PostgreSQL database: config check connects (and creates
/// nothing), shows the URL without its password, and fails at once with
/// exit 1 on a server that is not there.
#[test]
fn config_check_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let base = match std::env::var("IMGAPI_TEST_DATABASE_URL") {
        Ok(u) => u,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("IMGAPI_TEST_DATABASE_URL must be set in CI (scripts/test.sh sets it)")
        }
        Err(_) => {
            eprintln!("*** NOT RUN: config_check_postgres needs IMGAPI_TEST_DATABASE_URL");
            return;
        }
    };
    let (server, _) = base.rsplit_once('/').unwrap();
    let (scheme, rest) = server.split_once("://").unwrap();
    let with_password = format!(
        "{scheme}://{}:hunter2@{}/postgres",
        &rest[..rest.find('@').unwrap()],
        &rest[rest.find('@').unwrap() + 1..]
    );
    let out = config_check(
        tmp.path(),
        &["--data-dir", "data", "--database-url", &with_password],
        &[],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains(":***@"), "{stdout}");
    assert!(stderr.contains("ok: database postgres://"), "{stderr}");
    assert!(stderr.contains("migrations applied"), "{stderr}");
    let port = free_port();
    let t0 = Instant::now();
    let out = config_check(
        tmp.path(),
        &["--data-dir", "data"],
        &[(
            "IMGAPI_DATABASE_URL",
            &format!("postgres://postgres@127.0.0.1:{port}/x"),
        )],
    );
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "imgapi: database postgres://postgres@127.0.0.1:{port}/x: cannot connect"
        )),
        "{stderr}"
    );
}
