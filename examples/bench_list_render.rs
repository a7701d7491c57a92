//! Bench-only: where a 1 000-image ListImages page spends its time, on a
//! database seeded by `bench_seed_list`: the query returning the stored
//! manifests, parsing them, and rendering + pretty-printing them (what
//! `GET /images?limit=1000` does per image).
//!
//!   cargo run --release --example bench_list_render -- DATA_DIR

use std::path::PathBuf;
use std::time::Instant;

use imgapi::db::images::{ListQuery, list_sql};
use imgapi::manifest::{Image, RenderOpts};
use rusqlite::{Connection, OpenFlags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: bench_list_render DATA_DIR")?;
    let c = Connection::open_with_flags(
        PathBuf::from(dir).join("imgapi.sqlite"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let (sql, args) = list_sql(&ListQuery::default());
    let rounds = 50;
    let (mut q, mut parse, mut render, mut bytes) = (0f64, 0f64, 0f64, 0usize);
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
        let out: Vec<serde_json::Value> = imgs
            .iter()
            .map(|i| i.render(RenderOpts::default()))
            .collect();
        let body = serde_json::to_vec_pretty(&out)?;
        render += t.elapsed().as_secs_f64();
        bytes = body.len();
    }
    let per = |t: f64| t / rounds as f64 * 1e3;
    println!(
        "limit=1000 page: query {:.2} ms, parse {:.2} ms, render+pretty {:.2} ms; body {} KiB",
        per(q),
        per(parse),
        per(render),
        bytes / 1024
    );
    Ok(())
}
