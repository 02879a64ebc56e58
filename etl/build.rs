//! Embeds `migrations/{postgres,clickhouse}/*.sql` so the binary can migrate from anywhere.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut code = String::from("&[\n");
    for target in ["postgres", "clickhouse"] {
        let dir = root.join(target);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_str().expect("UTF-8 file name");
            let path = path.canonicalize().unwrap();
            writeln!(
                code,
                "    ({target:?}, {name:?}, include_str!({:?})),",
                path.display()
            )
            .unwrap();
        }
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_migrations.rs");
    std::fs::write(out, code).unwrap();
}
