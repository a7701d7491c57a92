//! What the client prints: tables and key/value lists for people, JSON for
//! scripts (`--json`), and progress bars (on a terminal only).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::types::{AccountUsage, Image, UploadInfo, Usage};

/// A progress bar over `total` bytes, drawn on stderr only when stderr is a
/// terminal and the output is not JSON; hidden otherwise.
pub fn bar(total: u64, json: bool, label: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(label.to_string());
    pb
}

/// Prints `v` as pretty JSON on stdout.
pub fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A text table: a header row and rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table of `images list`.
pub fn images_table(images: &[Image]) -> String {
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let published = i
                .published_at
                .as_deref()
                .map(|s| s.get(..10).unwrap_or(s).to_string())
                .unwrap_or_else(|| "-".into());
            vec![
                i.uuid.to_string(),
                i.name.clone(),
                i.version.clone(),
                i.os.clone(),
                i.type_.clone(),
                i.state.clone(),
                published,
            ]
        })
        .collect();
    table(
        &[
            "UUID",
            "NAME",
            "VERSION",
            "OS",
            "TYPE",
            "STATE",
            "PUBLISHED",
        ],
        &rows,
    )
}

/// An object as `key: value` lines (nested values as compact JSON).
pub fn fields(v: &Value) -> String {
    let Some(o) = v.as_object() else {
        return cell(v) + "\n";
    };
    let w = o.keys().map(|k| k.len()).max().unwrap_or(0);
    o.iter()
        .map(|(k, v)| format!("{:<w$}  {}\n", format!("{k}:"), cell(v), w = w + 1))
        .collect()
}

/// Prints `v` as JSON (`--json`) or as fields.
pub fn show(v: &Value, as_json: bool) {
    if as_json {
        json(v)
    } else {
        print!("{}", fields(v))
    }
}

/// The table of `uploads list` (each upload, and the file of this
/// machine that it resumes, if any).
pub fn uploads_table<P>(ups: &[(impl std::ops::Deref<Target = UploadInfo>, P)]) -> String {
    let rows: Vec<Vec<String>> = ups
        .iter()
        .map(|(u, _)| {
            vec![
                u.id.to_string(),
                u.state.clone(),
                format!("{}/{}", u.offset, u.length),
                u.path
                    .as_deref()
                    .or(u.metadata.get("filename").map(String::as_str))
                    .unwrap_or("-")
                    .to_string(),
                u.expires_at.clone(),
            ]
        })
        .collect();
    table(&["ID", "STATE", "OFFSET/LENGTH", "FILE", "EXPIRES"], &rows)
}

/// Bytes for people: 1536 -> "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The table of `usage` (every account).
pub fn usage_table(accounts: &[AccountUsage]) -> String {
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|a| {
            vec![
                a.account.to_string(),
                a.login.clone().unwrap_or_else(|| "-".into()),
                human_bytes(a.bytes),
                a.images_total.count.to_string(),
                human_bytes(a.images_total.bytes),
                a.uploads.count.to_string(),
                human_bytes(a.uploads.bytes),
            ]
        })
        .collect();
    table(
        &[
            "ACCOUNT",
            "LOGIN",
            "BYTES",
            "IMAGES",
            "IMAGE BYTES",
            "UPLOADS",
            "UPLOAD BYTES",
        ],
        &rows,
    )
}

/// One account's usage, for people.
pub fn usage_fields(u: &Usage) -> String {
    let limit = |v: Option<u64>, human: bool| match v {
        None => "unlimited".to_string(),
        Some(x) if human => human_bytes(x),
        Some(x) => x.to_string(),
    };
    let mut out = format!(
        "account: {}\nlogin: {}\nbytes: {} (quota: {})\nimages: {} (quota: {}), {}\n",
        u.account,
        u.login.as_deref().unwrap_or("-"),
        human_bytes(u.bytes),
        limit(u.quota.max_bytes, true),
        u.images_total.count,
        limit(u.quota.max_images, false),
        human_bytes(u.images_total.bytes),
    );
    for (state, c) in &u.images {
        out += &format!("  {state}: {}, {}\n", c.count, human_bytes(c.bytes));
    }
    out += &format!(
        "unfinished uploads: {}, {}\ndownloads (30 days): {}\n",
        u.uploads.count,
        human_bytes(u.uploads.bytes),
        u.downloads_30d
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let t = table(
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "w".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz    w\n");
    }
}
