//! Bench-only: where a 1 000-image ListImages page spends its time, on a
//! database seeded by `scripts/bench.sh list` (keep one with
//! `LIST_SEEDED=DIR`: DIR/imgapi-100000.sqlite), or a data directory: the
//! query returning the stored manifests, parsing them, rendering each
//! image's wire form and pretty-printing it (what a list with a non-default
//! rendering still does), against the query returning each image's stored
//! list form (`images.wire`, sql/0011) and concatenating them (what a list
//! with the default rendering does). Both bodies are compared byte for
//! byte. The database must have been opened once by a server of sql/0011
//! or later (which fills `images.wire`).
//!
//!   cargo run --release --example bench_list_render -- DATA_DIR|DB_FILE

use std::path::PathBuf;
use std::time::Instant;

use imgapi::db::images::{Dense, ListQuery, Select, list_sql, list_sql_select};
use imgapi::manifest::{Image, RenderOpts};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut path = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: bench_list_render DATA_DIR|DB_FILE")?,
    );
    if path.is_dir() {
        path.push("imgapi.sqlite");
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let (sql, args) = list_sql(&ListQuery::default());
    let rounds = 50;
    let opts = RenderOpts::default();
    let (mut q, mut parse, mut to_wire, mut old, mut new) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let (mut wq, mut concat) = (0f64, 0f64);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut st = c.prepare_cached(&sql)?;
        let raw: Vec<String> = st
            .query_map(rusqlite::params_from_iter(args.clone()), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        q += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let imgs: Vec<Image> = raw
            .iter()
            .map(|s| serde_json::from_str(s))
            .collect::<Result<_, _>>()?;
        parse += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let wires: Vec<_> = imgs.iter().map(|i| i.to_wire(opts)).collect();
        to_wire += t.elapsed().as_secs_f64();
        drop(wires);

        // Before: to_wire, to_vec_pretty, every line re-indented.
        let t = Instant::now();
        let mut body_old = Vec::new();
        for (k, img) in imgs.iter().enumerate() {
            body_old.extend_from_slice(if k == 0 { b"[\n  " } else { b",\n  " });
            let one = serde_json::to_vec_pretty(&img.to_wire(opts))?;
            for (i, line) in one.split(|b| *b == b'\n').enumerate() {
                if i > 0 {
                    body_old.extend_from_slice(b"\n  ");
                }
                body_old.extend_from_slice(line);
            }
        }
        body_old.extend_from_slice(b"\n]");
        old += t.elapsed().as_secs_f64();

        // Now: to_wire, pretty-printed straight at the element's indentation.
        let t = Instant::now();
        let mut body_new = Vec::new();
        for (k, img) in imgs.iter().enumerate() {
            body_new.extend_from_slice(if k == 0 { b"[\n  " } else { b",\n  " });
            let mut f = PrettyFormatter::new();
            f.begin_array(&mut std::io::sink())?;
            f.begin_array_value(&mut std::io::sink(), true)?;
            img.to_wire(opts)
                .serialize(&mut serde_json::Serializer::with_formatter(
                    &mut body_new,
                    f,
                ))?;
        }
        body_new.extend_from_slice(b"\n]");
        new += t.elapsed().as_secs_f64();
        if body_old != body_new {
            return Err("the two bodies differ".into());
        }
        bytes = body_new.len();

        // Stored list forms: the query, then the concatenation.
        let t = Instant::now();
        let (sql, args) =
            list_sql_select(&ListQuery::default(), Dense::default(), None, Select::Wire);
        let mut st = c.prepare_cached(&sql)?;
        let stored: Vec<(bool, String)> = st
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        wq += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut body_wire = Vec::with_capacity(bytes);
        for (k, (is_wire, w)) in stored.iter().enumerate() {
            if !is_wire {
                return Err(
                    "an image without its stored list form: open the database with a server first"
                        .into(),
                );
            }
            body_wire.extend_from_slice(if k == 0 { b"[\n  " } else { b",\n  " });
            body_wire.extend_from_slice(w.as_bytes());
        }
        body_wire.extend_from_slice(b"\n]");
        concat += t.elapsed().as_secs_f64();
        if body_wire != body_new {
            return Err("the stored-JSON body differs from the rendered one".into());
        }
    }
    let per = |t: f64| t / rounds as f64 * 1e3;
    println!(
        "limit=1000 page, rendered from manifests: query {:.2} ms, parse {:.2} ms, to_wire {:.2} ms, \
         render+pretty (re-indented) {:.2} ms, (at the element's indentation) {:.2} ms (to_wire included); \
         total {:.2} ms; body {} KiB",
        per(q),
        per(parse),
        per(to_wire),
        per(old),
        per(new),
        per(q + parse + new),
        bytes / 1024
    );
    println!(
        "limit=1000 page, from stored list forms: query {:.2} ms, concatenation {:.2} ms; total {:.2} ms \
         (byte-identical)",
        per(wq),
        per(concat),
        per(wq + concat),
    );
    Ok(())
}
