//! Bench-only: where a 1 000-image ListImages page spends its time, on a
//! database seeded by `scripts/bench.sh list` (keep one with
//! `LIST_SEEDED=DIR`: DIR/imgapi-100000.sqlite), or a data directory: the query returning the stored manifests, parsing
//! them, rendering each image's wire form and pretty-printing it, the way
//! the ListImages body did before issue 13's last changes (through a
//! pretty-printed object re-indented line by line) and the way it does now
//! (written straight into the body at the array's indentation); both
//! outputs are compared byte for byte.
//!
//!   cargo run --release --example bench_list_render -- DATA_DIR|DB_FILE

use std::path::PathBuf;
use std::time::Instant;

use imgapi::db::images::{ListQuery, list_sql};
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
    }
    let per = |t: f64| t / rounds as f64 * 1e3;
    println!(
        "limit=1000 page: query {:.2} ms, parse {:.2} ms, to_wire {:.2} ms, \
         render+pretty before {:.2} ms, now {:.2} ms (to_wire included); body {} KiB",
        per(q),
        per(parse),
        per(to_wire),
        per(old),
        per(new),
        bytes / 1024
    );
    Ok(())
}
