//! Bench-only: seed an imgapi database with many images for the ListImages
//! section of `scripts/bench.sh` (100 000 images through the HTTP API would
//! take far longer than the bench itself). Rows go in through the
//! service's own `db::images::insert`, so the columns, side tables and
//! manifests are exactly what CreateImage and ActivateImage store.
//!
//!   cargo run --release --example bench_seed_list -- DATA_DIR COUNT OWNERS NAMES
//!
//! Image `i` has owner `i % OWNERS`, name `img{i % NAMES}`, version
//! `1.0.{i / NAMES}`; one image in two is public, one in 20 disabled, one
//! in 50 unactivated; os, type, tags and billing tags cycle through small
//! sets; one private image in ten is shared (acl) with the next owner.

use std::path::PathBuf;

use imgapi::db::{Db, images};
use imgapi::manifest::Image;
use uuid::Uuid;

/// The uuid of owner `n` (also printed, for the bench's queries).
fn owner(n: u64) -> Uuid {
    Uuid::from_u128(0x0b0b_0000_0000_4000_8000_0000_0000_0000 + n as u128)
}

fn image(i: u64, owners: u64, names: u64) -> Image {
    let public = i.is_multiple_of(2);
    let activated = i % 50 != 1;
    let acl: Vec<Uuid> = if !public && i % 10 == 3 {
        vec![owner((i + 1) % owners)]
    } else {
        vec![]
    };
    let secs = 1_600_000_000 + i * 37;
    let published = chrono_like(secs);
    let type_ = ["zone-dataset", "zvol", "lx-dataset", "docker"][(i % 4) as usize];
    let os = ["smartos", "linux", "windows"][(i % 3) as usize];
    let v = serde_json::json!({
        "v": 2,
        "uuid": Uuid::from_u128(0x1111_0000_0000_4000_8000_0000_0000_0000 + i as u128),
        "owner": owner(i % owners),
        "name": format!("img{}", i % names),
        "version": format!("1.0.{}", i / names),
        "description": format!("Benchmark image {i}: a base image with the usual packages installed."),
        "homepage": "https://docs.example.com/images/base",
        "activated": activated,
        "disabled": i % 20 == 7,
        "public": public,
        "published_at": if activated { Some(published.clone()) } else { None },
        "type": type_,
        "os": os,
        "files": [{
            "sha1": format!("{:040x}", i * 2654435761),
            "size": 104857600 + i,
            "compression": "gzip",
            "stor": "local",
            "content_md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "mtime": published,
        }],
        "acl": acl,
        "requirements": {"min_platform": {"7.0": "20200101T000000Z"}, "networks": [{"name": "net0", "description": "public"}]},
        "tags": {"role": if i.is_multiple_of(10) { "os" } else { "app" }, "group": format!("g{}", i % 100)},
        "billing_tags": [format!("b{}", i % 20)],
    });
    serde_json::from_value(v).expect("a valid image")
}

/// `secs` since the epoch as IMGAPI's `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn chrono_like(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count, owners, names] = &args[..] else {
        return Err("usage: bench_seed_list DATA_DIR COUNT OWNERS NAMES".into());
    };
    let (count, owners, names): (u64, u64, u64) = (count.parse()?, owners.parse()?, names.parse()?);
    let db = Db::open(&PathBuf::from(dir).join("imgapi.sqlite"))?;
    let mut i = 0;
    while i < count {
        let end = (i + 5000).min(count);
        let batch: Vec<Image> = (i..end).map(|k| image(k, owners, names)).collect();
        db.write(move |tx| {
            for img in &batch {
                images::insert(tx, img)?;
            }
            Ok::<_, imgapi::db::DbError>(())
        })
        .await?;
        i = end;
    }
    for n in 0..owners.min(3) {
        println!("owner {n}: {}", owner(n));
    }
    Ok(())
}
