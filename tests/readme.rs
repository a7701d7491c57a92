//! The README's five-minute tour, run as written: every `$ command` of its
//! console blocks runs in bash (in a scratch directory, the built binary on
//! `PATH`, against a real server of its own), and what it prints must be
//! what the README shows, but for uuids (each README uuid stands for the
//! one the server gave, in later commands too), dates, the port and the
//! byte count of a resume. Stdout is compared; stderr (progress, notes of
//! retries) is shown on a failure. So the README cannot go stale.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// One `$ command` and the lines the README shows after it.
struct Step {
    cmd: String,
    want: Vec<String>,
}

/// The console blocks of the README's tour section, in order.
fn tour_steps() -> Vec<Step> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("\n## A five-minute tour\n")
        .expect("README has a five-minute tour");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut steps: Vec<Step> = vec![];
    let mut in_block = false;
    for line in rest[..end].lines() {
        if !in_block {
            in_block = line == "```console";
            continue;
        }
        if line == "```" {
            in_block = false;
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            steps.push(Step {
                cmd: cmd.to_string(),
                want: vec![],
            });
        } else {
            steps
                .last_mut()
                .expect("console block starts with a command")
                .want
                .push(line.to_string());
        }
    }
    steps
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// The uuids of `line`, in order.
fn uuids(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    (0..b.len().saturating_sub(35))
        .filter(|&i| is_uuid(&b[i..i + 36]))
        .map(|i| line[i..i + 36].to_string())
        .collect()
}

/// `line` with what differs from run to run made fixed: uuids, dates
/// (YYYY-MM-DD, with a time or not), a loopback URL's port, a non-zero
/// `resumed_from` count.
fn normalize(line: &str) -> String {
    let mut out = String::new();
    let b = line.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.end <= b.len() && b[r].iter().all(u8::is_ascii_digit);
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else if digits(i..i + 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5..i + 7)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8..i + 10)
        {
            out.push_str("<date>");
            i += 10;
            if b.get(i) == Some(&b'T') {
                while i < b.len() && b[i] != b'Z' && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                i += 1;
            }
        } else if line[i..].starts_with("127.0.0.1:") && digits(i + 10..i + 11) {
            out.push_str("127.0.0.1:<port>");
            i += 10;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            let c = line[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    if let Some(n) = out.strip_prefix("resumed_from:") {
        let count = n.trim_start();
        if count.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_only(count) {
            return format!("resumed_from:{}<n>", &n[..n.len() - count.len()]);
        }
    }
    out.trim_end().to_string()
}

fn digits_only(s: &str) -> bool {
    s.trim_end().chars().all(|c| c.is_ascii_digit())
}

/// Sourced before every command. The tour's `timeout -s KILL 1 imgapi
/// publish ...` kills the client one second into a 1 GiB upload; so that
/// the kill lands mid-upload on any machine (a slow or busy one too), this
/// `timeout` waits that second and also until the server holds some of the
/// file's bytes, then kills the client with SIGKILL, and prints what an
/// interactive shell prints for a command killed so.
const PRELUDE: &str = r#"
timeout() {
  if [ "$1 $2" != "-s KILL" ]; then echo "readme test: timeout $* is not emulated"; return 99; fi
  local secs=$3; shift 3
  "$@" &
  local pid=$! i=0
  command sleep "$secs"
  until imgapi uploads list 2>/dev/null | grep -Eq ' uploading +[1-9][0-9]*/'; do
    i=$((i + 1)); [ $i -gt 2400 ] && break
    command sleep 0.05
  done
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    echo Killed
    return 137
  fi
  wait "$pid"
}
"#;

#[test]
fn readme_tour_runs_as_written() {
    let steps = tour_steps();
    assert!(steps.len() >= 8, "the tour has {} commands", steps.len());
    let bin = Path::new(env!("CARGO_BIN_EXE_imgapi"));
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();

    // The first command starts the server: the built binary (not a release
    // build), on a free port, in the scratch directory (its ./data).
    let serve = &steps[0];
    assert_eq!(serve.cmd, "cargo run --release -- serve");
    let mut server = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(work)
        .env("IMGAPI_LOG", "warn")
        .env_remove("IMGAPI_CONFIG")
        .env_remove("IMGAPI_DATA_DIR")
        .env_remove("IMGAPI_LISTEN")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let server = Kill(server);
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(
        serve.want.iter().map(|l| normalize(l)).collect::<Vec<_>>(),
        [normalize(&first)],
        "$ {}",
        serve.cmd
    );
    let url = first.strip_prefix("imgapi listening on ").unwrap();

    let env_file = work.join(".tour-env");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut uuid_of: HashMap<String, String> = HashMap::new();
    for step in &steps[1..] {
        // A uuid the README showed earlier stands for the one this run got.
        let mut cmd = step.cmd.clone();
        for (theirs, ours) in &uuid_of {
            cmd = cmd.replace(theirs, ours);
        }
        let script = format!(
            "{PRELUDE}\n[ -f {env} ] && . {env}\n{cmd}\nrc=$?\nexport -p > {env}\nexit $rc\n",
            env = env_file.display()
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(work)
            .env("PATH", &path)
            .env("IMGAPI_URL", url)
            .env("IMGAPI_STATE_DIR", work.join(".state"))
            .env_remove("IMGAPI_ACCOUNT")
            .env_remove("IMGAPI_TOKEN")
            .env_remove("IMGAPI_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        let shown = |v: &[String]| v.iter().map(|l| normalize(l)).collect::<Vec<_>>();
        // Stdout is what the README shows; stderr has the progress and
        // notes of retries (a resumed upload may meet the killed run's
        // last request still being finished: "PATCH answered 409;
        // resuming").
        assert_eq!(
            shown(&got),
            shown(&step.want),
            "$ {cmd}\nprinted:\n{}\nstderr:\n{}",
            got.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        let killed = step.want.last().is_some_and(|l| l == "Killed");
        assert!(out.status.success() || killed, "$ {cmd}: {:?}", out.status);
        for (theirs, ours) in step.want.iter().zip(&got) {
            for (t, o) in uuids(theirs).into_iter().zip(uuids(ours)) {
                let prev = uuid_of.insert(t.clone(), o.clone());
                assert!(
                    prev.is_none_or(|p| p == o),
                    "README uuid {t} stands for two uuids"
                );
            }
        }
    }
    // The tour downloaded what it published, and published the big image
    // whole after the kill.
    assert_eq!(
        std::fs::read(work.join("copy.img")).unwrap(),
        std::fs::read(work.join("hello.img")).unwrap()
    );
    let list = Command::new(bin)
        .args(["images", "list", "--json"])
        .env("IMGAPI_URL", url)
        .env("IMGAPI_ACCOUNT", "930896af-bf8c-48d4-885c-6573a94b1853")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let mut names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["big", "hello"]);
    drop(server);
}

#[test]
fn normalize_keeps_what_matters() {
    assert_eq!(
        normalize("2f1f1a7e-64a6-4f5c-8a11-1c4bd5d0f6a4  hello  1.0.0  2026-12-06"),
        "<uuid>  hello  1.0.0  <date>"
    );
    assert_eq!(
        normalize("imgapi listening on http://127.0.0.1:8080"),
        "imgapi listening on http://127.0.0.1:<port>"
    );
    assert_eq!(normalize("resumed_from:  135266304"), "resumed_from:  <n>");
    assert_eq!(normalize("resumed_from:    0"), "resumed_from:    0");
    assert_eq!(normalize("size:     16777216"), "size:     16777216");
    assert_eq!(
        uuids("owner: 930896af-bf8c-48d4-885c-6573a94b1853"),
        ["930896af-bf8c-48d4-885c-6573a94b1853"]
    );
}
