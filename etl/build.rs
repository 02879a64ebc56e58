//! Embeds `migrations/{postgres,clickhouse}/*.sql` so the binary can migrate from anywhere.
//!
//! The SQL is written into the generated file itself, and the watched paths are relative to
//! this package: cargo shares a workspace member's build across checkouts (its fingerprints do
//! not depend on the checkout's path), so absolute paths here would let one clone's build
//! embed another clone's migrations.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let mut code = String::from("&[\n");
    for target in ["postgres", "clickhouse"] {
        let relative = format!("../migrations/{target}");
        println!("cargo:rerun-if-changed={relative}");
        // Read at run time: the compiled build script is shared between checkouts too, and a
        // compile-time `env!` would point every checkout at the first one's migrations.
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let dir = Path::new(&manifest_dir).join(&relative);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_str().expect("UTF-8 file name");
            let sql =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            writeln!(code, "    ({target:?}, {name:?}, {sql:?}),").unwrap();
        }
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_migrations.rs");
    std::fs::write(out, code).unwrap();
}
