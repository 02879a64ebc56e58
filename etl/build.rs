//! Embeds `migrations/{postgres,clickhouse}/*.sql` so the binary can migrate from anywhere, and
//! the built web UI (`ui/dist`, from `scripts/build-ui.sh`) so the service serves it with no
//! files beside it.
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
    let out_dir = std::env::var("OUT_DIR").unwrap();
    std::fs::write(Path::new(&out_dir).join("embedded_migrations.rs"), code).unwrap();
    embed_ui(Path::new(&out_dir));
}

/// Copies `ui/dist` into `OUT_DIR` and writes `embedded_ui.rs`: `(path, bytes)` per file. The
/// copy keeps `include_bytes!` inside this build's own directory (see the note on checkouts).
fn embed_ui(out_dir: &Path) {
    let relative = "../ui/dist";
    println!("cargo:rerun-if-changed={relative}");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest_dir).join(relative);
    assert!(
        dist.join("index.html").is_file(),
        "{} has no built UI: run scripts/build-ui.sh (./dev.sh up and ./dev.sh test do)",
        dist.display()
    );
    let copy = out_dir.join("ui");
    let _ = std::fs::remove_dir_all(&copy);
    let mut code = String::from("&[\n");
    let mut pending = vec![dist.clone()];
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in files {
        let name = path
            .strip_prefix(&dist)
            .unwrap()
            .to_str()
            .expect("UTF-8 file name")
            .to_owned();
        let target = copy.join(&name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            target.display().to_string()
        )
        .unwrap();
    }
    code.push(']');
    std::fs::write(out_dir.join("embedded_ui.rs"), code).unwrap();
}
