//! One insert of Arrow batches: the wire format, the `INSERT` statement, and the direct insert
//! that jobs use (their batches are already large, so they skip the ETL's group commit).

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use bytes::Bytes;

use crate::clickhouse::catalog::Table;
use crate::clickhouse::compression::Compression;
use crate::clickhouse::{ClickHouse, ClickHouseError, native};

/// How rows travel to ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// ClickHouse's columnar format; every server version reads it.
    Native,
    /// Arrow IPC stream; read by ClickHouse 21.x and later.
    ArrowStream,
}

impl WireFormat {
    /// The format to use for a server version string such as `18.16.1` or `25.3.2.39`.
    pub fn for_server_version(version: &str) -> WireFormat {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major >= 21 {
            WireFormat::ArrowStream
        } else {
            WireFormat::Native
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WireFormat::Native => "Native",
            WireFormat::ArrowStream => "ArrowStream",
        }
    }

    /// Encodes batches (all of one table) as one request body.
    pub fn encode(self, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
        match self {
            WireFormat::Native => {
                let mut out =
                    Vec::with_capacity(batches.iter().map(RecordBatch::get_array_memory_size).sum());
                for batch in batches {
                    native::encode_block(batch, &mut out)?;
                }
                Ok(out)
            }
            WireFormat::ArrowStream => {
                let schema = batches
                    .first()
                    .map(RecordBatch::schema)
                    .ok_or_else(|| ArrowError::InvalidArgumentError("no batches to encode".into()))?;
                let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)?;
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.into_inner()
            }
        }
    }
}

/// The `INSERT` statement for a batch ingest made for `table`, with the batch's columns.
pub fn insert_statement(table: Table, format: WireFormat) -> String {
    let schema = table.insert_schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    format!(
        "INSERT INTO {} ({}) FORMAT {}",
        table.insert_table(),
        columns.join(", "),
        format.name()
    )
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("encoding {table}: {source}")]
    Encode {
        table: &'static str,
        #[source]
        source: ArrowError,
    },
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

impl ClickHouse {
    /// Inserts `batches` of `table` as one uncompressed `Native` insert (every server reads it).
    pub async fn insert_batches(&self, table: Table, batches: &[RecordBatch]) -> Result<(), InsertError> {
        let body = WireFormat::Native
            .encode(batches)
            .map_err(|source| InsertError::Encode {
                table: table.name(),
                source,
            })?;
        self.insert_native(table, body.into()).await
    }

    /// Inserts a body of `Native` blocks already encoded for `table` (see [`native::encode_block`]).
    pub async fn insert_native(&self, table: Table, body: Bytes) -> Result<(), InsertError> {
        Ok(self
            .insert(
                &insert_statement(table, WireFormat::Native),
                body,
                Compression::None,
            )
            .await?)
    }
}
