//! `docs/errors.md` lists exactly the codes and statuses the server returns.

use std::collections::BTreeMap;

#[test]
fn error_table_matches_code() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md")).unwrap();
    let documented: BTreeMap<String, u16> = doc
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| code"))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cols[1].to_string(),
                cols[2]
                    .parse()
                    .unwrap_or_else(|_| panic!("bad status in {l}")),
            )
        })
        .collect();
    let code: BTreeMap<String, u16> = imgapi::error::Error::catalog()
        .iter()
        .map(|e| (e.code().to_string(), e.status()))
        .collect();
    assert_eq!(documented, code, "docs/errors.md and src/error.rs disagree");
}
