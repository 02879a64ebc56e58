//! The SQL guard over any text: a reason or a rewritten query, never a panic. Whether an accepted
//! query stays inside the caller's project is checked on a real database by
//! `tests/tests/query_guard.rs`, which runs every accepted query of this target's corpus.
#![no_main]

use agenttrace_etl::analytics::sql_guard::scope_to_project;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(guarded) = scope_to_project(sql, Uuid::from_u128(0xa)) {
        assert!(!guarded.is_empty(), "{sql} was accepted as nothing");
    }
});
