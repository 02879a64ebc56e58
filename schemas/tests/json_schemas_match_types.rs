//! Fails when `schemas/json/*.schema.json` no longer match the Rust types.
//! Regenerate with `AGENTTRACE_BLESS=1 cargo test -p agenttrace-schemas`.

use std::path::Path;

#[test]
fn checked_in_json_schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    let bless = std::env::var_os("AGENTTRACE_BLESS").is_some();
    for (name, generated) in agenttrace_schemas::json_schema::all() {
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is out of date with the Rust types; regenerate with \
             `AGENTTRACE_BLESS=1 cargo test -p agenttrace-schemas`",
            path.display()
        );
    }
}
