//! ClickHouse results as Polars frames: queries are read as Native, decoded to Arrow, and handed
//! to Polars through Arrow IPC.

use std::io::Cursor;

use agenttrace_etl::clickhouse::ClickHouse;
use polars::prelude::*;

/// Arrow batches (from ClickHouse) → a Polars frame, through Arrow IPC.
fn to_polars(batches: &[arrow_array::RecordBatch]) -> Result<DataFrame, String> {
    let schema = batches.first().map(|b| b.schema()).ok_or("no rows")?;
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).map_err(|e| e.to_string())?;
    for batch in batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    IpcStreamReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|e| e.to_string())
}

/// A result as ClickHouse sends it (Native) → a Polars frame.
pub fn read_chunk(native: &[u8]) -> Result<DataFrame, String> {
    to_polars(&agenttrace_etl::clickhouse::native::decode::all_blocks(native)?)
}

/// A Native result's rows as a frame; None when it has none.
pub fn frame_of(native: &[u8]) -> Result<Option<DataFrame>, String> {
    if native.is_empty() {
        return Ok(None);
    }
    let df = read_chunk(native)?;
    Ok((df.height() > 0).then_some(df))
}

/// Runs a query (without FORMAT) and returns its rows as a frame; None when it has none.
pub async fn query_frame(clickhouse: &ClickHouse, sql: &str) -> Result<Option<DataFrame>, String> {
    let body = clickhouse
        .query(&format!("{sql} FORMAT Native"))
        .await
        .map_err(|e| e.to_string())?;
    frame_of(&body)
}

/// A text column of a frame.
pub fn strings<'a>(df: &'a DataFrame, column: &str) -> Result<&'a StringChunked, String> {
    df.column(column).and_then(|c| c.str()).map_err(|e| e.to_string())
}
