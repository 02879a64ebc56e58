//! ClickHouse's Native format as the ETL decodes it (backups, restores, reads): any bytes give
//! batches or an error, never a panic or an unbounded allocation; what decodes re-encodes and
//! decodes to the same batches.
#![no_main]

use agenttrace_etl::clickhouse::native::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batches) = decode::all_blocks(data) else {
        return;
    };
    for batch in batches {
        let Ok(encoded) = encode(&batch) else { continue };
        let (again, used) = decode::block(&encoded).expect("our own encoding decodes");
        assert_eq!(used, encoded.len());
        assert_eq!(again, batch, "a decoded block changed on re-encoding");
    }
});
