//! Decoding of ClickHouse `Native` output into Arrow, one block at a time.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBufferBuilder, Decimal128Builder, Float32Builder, Float64Builder, Int8Builder, Int16Builder,
    Int32Builder, Int64Builder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::{
    ArrayRef, Date32Array, ListArray, RecordBatch, StringArray, TimestampSecondArray, make_array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};

/// Not enough bytes for a whole block yet.
#[derive(Debug)]
pub struct NeedMore;

#[derive(Debug)]
pub enum DecodeError {
    NeedMore,
    Invalid(String),
}

impl From<NeedMore> for DecodeError {
    fn from(_: NeedMore) -> Self {
        DecodeError::NeedMore
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], NeedMore> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(NeedMore)?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    /// `count` fixed-width values of `width` bytes (a count too large for memory is invalid,
    /// never an overflow).
    fn take_values(&mut self, count: usize, width: usize) -> Result<&'a [u8], DecodeError> {
        let n = count
            .checked_mul(width)
            .ok_or_else(|| DecodeError::Invalid(format!("{count} values of {width} bytes")))?;
        Ok(self.take(n)?)
    }

    /// Bytes left: a bound for any capacity a count read from the input asks for.
    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint longer than 10 bytes".into()))
    }

    fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()? as usize;
        Ok(self.take(len)?)
    }
}

/// A parsed ClickHouse type name.
#[derive(Debug, Clone, PartialEq)]
enum ChType {
    Scalar(String),
    Nullable(Box<ChType>),
    Array(Box<ChType>),
}

fn parse_type(name: &str) -> ChType {
    let name = name.trim();
    if let Some(inner) = name.strip_prefix("Nullable(").and_then(|s| s.strip_suffix(')')) {
        ChType::Nullable(Box::new(parse_type(inner)))
    } else if let Some(inner) = name.strip_prefix("Array(").and_then(|s| s.strip_suffix(')')) {
        ChType::Array(Box::new(parse_type(inner)))
    } else {
        ChType::Scalar(name.to_owned())
    }
}

fn unsupported(name: &str) -> DecodeError {
    DecodeError::Invalid(format!(
        "ClickHouse type {name} cannot be returned as Arrow or Parquet yet; cast it (e.g. toString) or use format=json"
    ))
}

/// Decimal precision and scale from `Decimal(P, S)` or `DecimalNN(S)`.
fn decimal_spec(name: &str) -> Option<(u8, i8)> {
    let args = name.split_once('(')?.1.strip_suffix(')')?;
    let numbers: Vec<i64> = args
        .split(',')
        .map(|a| a.trim().parse().ok())
        .collect::<Option<_>>()?;
    let (precision, scale) = match (name.split('(').next()?, numbers.as_slice()) {
        ("Decimal", [p, s]) => (*p, *s),
        ("Decimal32", [s]) => (9, *s),
        ("Decimal64", [s]) => (18, *s),
        ("Decimal128", [s]) => (38, *s),
        _ => return None,
    };
    // ClickHouse's own bounds (found by fuzzing: a scale of 142 wrapped to a negative i8).
    ((1..=38).contains(&precision) && (0..=precision).contains(&scale))
        .then_some((precision as u8, scale as i8))
}

fn scalar_data_type(name: &str) -> Result<DataType, DecodeError> {
    Ok(match name {
        "String" => DataType::Utf8,
        "UInt8" => DataType::UInt8,
        "UInt16" => DataType::UInt16,
        "UInt32" => DataType::UInt32,
        "UInt64" => DataType::UInt64,
        "Int8" => DataType::Int8,
        "Int16" => DataType::Int16,
        "Int32" => DataType::Int32,
        "Int64" => DataType::Int64,
        "Float32" => DataType::Float32,
        "Float64" => DataType::Float64,
        "Date" => DataType::Date32,
        _ if name == "DateTime" || name.starts_with("DateTime(") => {
            DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
        }
        _ => match decimal_spec(name) {
            Some((precision, scale)) => DataType::Decimal128(precision, scale),
            None => return Err(unsupported(name)),
        },
    })
}

fn arrow_type(ty: &ChType) -> Result<(DataType, bool), DecodeError> {
    Ok(match ty {
        ChType::Scalar(name) => (scalar_data_type(name)?, false),
        ChType::Nullable(inner) => (arrow_type(inner)?.0, true),
        ChType::Array(inner) => {
            let (item, nullable) = arrow_type(inner)?;
            (
                DataType::List(Arc::new(Field::new("item", item, nullable))),
                false,
            )
        }
    })
}

/// Reads `rows` values of a scalar type into an array (all valid; nulls are applied after).
fn read_scalar(cursor: &mut Cursor, name: &str, rows: usize) -> Result<ArrayRef, DecodeError> {
    macro_rules! fixed {
        ($builder:ty, $native:ty) => {{
            let size = std::mem::size_of::<$native>();
            let bytes = cursor.take_values(rows, size)?;
            let mut builder = <$builder>::with_capacity(rows);
            for chunk in bytes.chunks_exact(size) {
                builder.append_value(<$native>::from_le_bytes(chunk.try_into().unwrap()));
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match name {
        "String" => {
            // Copied as bytes, then validated as UTF-8 once for the whole column (with
            // every value starting on a character boundary): faster than per value.
            let mut offsets = Vec::with_capacity(rows.min(cursor.remaining()) + 1);
            offsets.push(0i32);
            let mut values = Vec::with_capacity(rows.saturating_mul(16).min(cursor.remaining()));
            for _ in 0..rows {
                values.extend_from_slice(cursor.string()?);
                offsets.push(i32::try_from(values.len()).map_err(|_| {
                    DecodeError::Invalid("a String column of one block holds more than 2 GiB".into())
                })?);
            }
            let array = StringArray::try_new(OffsetBuffer::new(offsets.into()), values.into(), None)
                .map_err(|_| {
                    DecodeError::Invalid("a String value is not UTF-8; use hex() or base64Encode()".into())
                })?;
            Arc::new(array)
        }
        "UInt8" => fixed!(UInt8Builder, u8),
        "UInt16" => fixed!(UInt16Builder, u16),
        "UInt32" => fixed!(UInt32Builder, u32),
        "UInt64" => fixed!(UInt64Builder, u64),
        "Int8" => fixed!(Int8Builder, i8),
        "Int16" => fixed!(Int16Builder, i16),
        "Int32" => fixed!(Int32Builder, i32),
        "Int64" => fixed!(Int64Builder, i64),
        "Float32" => fixed!(Float32Builder, f32),
        "Float64" => fixed!(Float64Builder, f64),
        "Date" => {
            let bytes = cursor.take_values(rows, 2)?;
            let days: Vec<i32> = bytes
                .chunks_exact(2)
                .map(|c| i32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect();
            Arc::new(Date32Array::from(days))
        }
        _ if name == "DateTime" || name.starts_with("DateTime(") => {
            let bytes = cursor.take_values(rows, 4)?;
            let seconds: Vec<i64> = bytes
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes(c.try_into().unwrap())))
                .collect();
            Arc::new(TimestampSecondArray::from(seconds).with_timezone("UTC"))
        }
        _ => {
            let (precision, scale) = decimal_spec(name).ok_or_else(|| unsupported(name))?;
            let width = match precision {
                0..=9 => 4,
                10..=18 => 8,
                _ => 16,
            };
            let bytes = cursor.take_values(rows, width)?;
            let mut builder = Decimal128Builder::with_capacity(rows)
                .with_precision_and_scale(precision, scale)
                .map_err(|e| DecodeError::Invalid(e.to_string()))?;
            for chunk in bytes.chunks_exact(width) {
                builder.append_value(match width {
                    4 => i128::from(i32::from_le_bytes(chunk.try_into().unwrap())),
                    8 => i128::from(i64::from_le_bytes(chunk.try_into().unwrap())),
                    _ => i128::from_le_bytes(chunk.try_into().unwrap()),
                });
            }
            Arc::new(builder.finish())
        }
    })
}

fn read_column(cursor: &mut Cursor, ty: &ChType, rows: usize) -> Result<ArrayRef, DecodeError> {
    match ty {
        ChType::Scalar(name) => read_scalar(cursor, name, rows),
        ChType::Nullable(inner) => {
            let flags = cursor.take(rows)?;
            let mut valid = BooleanBufferBuilder::new(rows);
            for flag in flags {
                valid.append(*flag == 0);
            }
            let values = read_column(cursor, inner, rows)?;
            let data = values
                .to_data()
                .into_builder()
                .nulls(Some(NullBuffer::new(valid.finish())))
                .build()
                .map_err(|e| DecodeError::Invalid(e.to_string()))?;
            Ok(make_array(data))
        }
        ChType::Array(inner) => {
            let ends = cursor.take_values(rows, 8)?;
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0i32);
            for chunk in ends.chunks_exact(8) {
                let end = u64::from_le_bytes(chunk.try_into().unwrap());
                let end = i32::try_from(end).map_err(|_| DecodeError::Invalid("array too large".into()))?;
                // Found by fuzzing: Arrow panics on offsets that go backwards.
                if end < *offsets.last().unwrap_or(&0) {
                    return Err(DecodeError::Invalid("array offsets go backwards".into()));
                }
                offsets.push(end);
            }
            let total = *offsets.last().unwrap_or(&0) as usize;
            let values = read_column(cursor, inner, total)?;
            let (item, nullable) = arrow_type(inner)?;
            let field = Arc::new(Field::new("item", item, nullable));
            let list = ListArray::try_new(field, OffsetBuffer::new(offsets.into()), values, None)
                .map_err(|e: ArrowError| DecodeError::Invalid(e.to_string()))?;
            Ok(Arc::new(list))
        }
    }
}

/// Decodes a whole Native body into its blocks.
pub fn all_blocks(mut data: &[u8]) -> Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    while !data.is_empty() {
        match block(data) {
            Ok((batch, used)) => {
                data = &data[used..];
                batches.push(batch);
            }
            Err(DecodeError::NeedMore) => return Err("the Native body ends inside a block".into()),
            Err(DecodeError::Invalid(message)) => return Err(message),
        }
    }
    Ok(batches)
}

/// Decodes the block at the start of `data`. Returns the batch and how many bytes it used,
/// or [`DecodeError::NeedMore`] when `data` ends inside the block.
pub fn block(data: &[u8]) -> Result<(RecordBatch, usize), DecodeError> {
    let mut cursor = Cursor { data, at: 0 };
    let columns = cursor.varint()? as usize;
    let rows = cursor.varint()? as usize;
    let mut fields = Vec::with_capacity(columns.min(cursor.remaining()));
    let mut arrays = Vec::with_capacity(columns.min(cursor.remaining()));
    for _ in 0..columns {
        let name = String::from_utf8_lossy(cursor.string()?).into_owned();
        let type_name = String::from_utf8_lossy(cursor.string()?).into_owned();
        let ty = parse_type(&type_name);
        let (data_type, nullable) = arrow_type(&ty)?;
        arrays.push(read_column(&mut cursor, &ty, rows)?);
        fields.push(Field::new(name, data_type, nullable));
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    let batch = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    Ok((batch, cursor.at))
}

/// A batch with no rows and the columns ClickHouse names and types (`DESCRIBE` of a query):
/// the schema of a result that had no rows, for which ClickHouse 18.16 sends no block at all.
pub fn empty_batch(columns: &[(String, String)]) -> Result<RecordBatch, DecodeError> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, type_name) in columns {
        let (data_type, nullable) = arrow_type(&parse_type(type_name))?;
        arrays.push(arrow_array::new_empty_array(&data_type));
        fields.push(Field::new(name, data_type, nullable));
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(0));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| DecodeError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_result_has_the_schema_a_block_would_have() {
        let columns = [
            ("id", "String"),
            ("n", "Nullable(Int64)"),
            ("tags", "Array(String)"),
        ]
        .map(|(n, t)| (n.to_owned(), t.to_owned()));
        let empty = empty_batch(&columns).unwrap();
        assert_eq!(empty.num_rows(), 0);
        let mut data = vec![3, 0];
        for (name, type_name) in &columns {
            data.push(name.len() as u8);
            data.extend_from_slice(name.as_bytes());
            data.push(type_name.len() as u8);
            data.extend_from_slice(type_name.as_bytes());
        }
        let (decoded, _) = block(&data).unwrap();
        assert_eq!(empty.schema(), decoded.schema());
    }

    /// One column `a Array(UInt8)` of `rows` rows with these end offsets and values.
    fn array_block(rows: u8, ends: &[u64], values: &[u8]) -> Vec<u8> {
        let mut data = vec![1, rows, 1, b'a', 12];
        data.extend_from_slice(b"Array(UInt8)");
        for end in ends {
            data.extend_from_slice(&end.to_le_bytes());
        }
        data.extend_from_slice(values);
        data
    }

    #[test]
    fn arrays_decode_and_offsets_that_go_backwards_are_refused() {
        let (batch, used) = block(&array_block(2, &[2, 3], &[7, 8, 9])).unwrap();
        assert_eq!((batch.num_rows(), used), (2, 5 + 12 + 16 + 3));
        // Found by fuzzing: these offsets made Arrow panic.
        let error = block(&array_block(2, &[3, 1], &[7, 8, 9])).unwrap_err();
        assert!(
            matches!(error, DecodeError::Invalid(ref m) if m.contains("backwards")),
            "{error:?}"
        );
    }

    #[test]
    fn decimals_keep_clickhouse_bounds_and_widths_through_a_round_trip() {
        assert_eq!(decimal_spec("Decimal(18, 12)"), Some((18, 12)));
        assert_eq!(decimal_spec("Decimal32(4)"), Some((9, 4)));
        // Found by fuzzing: scale 142 wrapped to a negative i8.
        assert_eq!(decimal_spec("Decimal(1 ,142)"), None);
        assert_eq!(decimal_spec("Decimal(0, 0)"), None);
        assert_eq!(decimal_spec("Decimal(300, 2)"), None);
        // Decimal(P ≤ 9) is 4 bytes on the wire, and re-encodes as 4 bytes.
        let mut data = vec![1, 1, 1, b'd', 13];
        data.extend_from_slice(b"Decimal(5, 2)");
        data.extend_from_slice(&12345i32.to_le_bytes());
        let (batch, used) = block(&data).unwrap();
        assert_eq!(used, data.len());
        let encoded = crate::clickhouse::native::encode(&batch).unwrap();
        let (again, used) = block(&encoded).unwrap();
        assert_eq!((again, used), (batch, encoded.len()));
    }

    #[test]
    fn absurd_counts_are_errors_not_allocations() {
        // 2^62 rows of UInt64: the byte count overflows.
        let mut data = vec![1];
        data.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        data.extend_from_slice(b"\x01a\x06UInt64");
        assert!(block(&data).is_err());
        // 2^62 columns announced, none present.
        let mut data = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0];
        data.push(0);
        assert!(block(&data).is_err());
    }
}
