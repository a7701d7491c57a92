//! The import graph is the architecture's: a test reads every module's
//! `crate::` paths and fails on an edge that points up (docs/ARCHITECTURE.md,
//! "Layers").
#![cfg(test)]

use std::collections::BTreeSet;
use std::path::Path;

/// The library's modules, lowest first. A module may use the modules of
/// lower layers (and its own), never one of its own layer or above. Below
/// them all is the crate `imgapi-protocol` (`crate::wire`, `crate::digest`
/// and `crate::tus` are its re-exports), which cannot name this crate: the
/// compiler keeps that edge, and the client crate's, one way.
const LAYERS: &[&[&str]] = &[
    &["clock", "config", "metrics"],
    &["store"],
    &["manifest"],
    &["db"],
    &["error", "lease"],
    &["identity", "locks", "params"],
    &["space"],
    &["uploads"],
    &["images"],
    &["registrar", "imports", "lifecycle"],
    &["admin"],
    &["api"],
];

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

/// The `crate::X` modules a file's code names (comments left out).
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    let mut seen = BTreeSet::new();
    for (layer, mods) in LAYERS.iter().enumerate() {
        for m in *mods {
            let mut fs = Vec::new();
            let (dir, file) = (src.join(m), src.join(format!("{m}.rs")));
            if dir.is_dir() {
                files(&dir, &mut fs);
            } else {
                fs.push(file);
            }
            assert!(!fs.is_empty(), "no source for module {m}");
            for f in fs {
                let text = std::fs::read_to_string(&f).unwrap();
                for u in uses(&text) {
                    seen.insert((m.to_string(), u.clone()));
                    match layer_of(&u) {
                        Some(l) if u != *m && l >= layer => upward.push(format!(
                            "{} uses crate::{u} (layer {l}; {m} is layer {layer})",
                            f.strip_prefix(&src).unwrap().display()
                        )),
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "edges that point up:\n{}",
        upward.join("\n")
    );
    // The table names every module the library has (a new one must be
    // placed in a layer).
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(layer_of(m).is_some(), "module {m} is in no layer of LAYERS");
        }
    }
    // And the test reads real edges.
    assert!(seen.contains(&("api".to_string(), "images".to_string())));
}

#[test]
fn uses_skip_comments() {
    let u = uses(
        "use crate::db::Meta;\n// crate::api is not used\nlet x = crate::clock::Clock::System; // crate::x\n",
    );
    assert_eq!(u, ["clock", "db"].iter().map(|s| s.to_string()).collect());
}
