//! Arrow `RecordBatch` → ClickHouse `Native` format, and the ClickHouse type of each column.
//!
//! Native is ClickHouse's own columnar format and every server version reads it, which makes it
//! the fast path on servers without `ArrowStream` input (18.16). A block is: number of columns
//! and rows (varints), then per column its name, its type name and its values: fixed-width
//! values little-endian, strings as varint length + bytes, `Nullable` as a null map (one byte
//! per row) followed by the values, `Array` as cumulative `UInt64` offsets followed by the
//! flattened values.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float64Type, Int32Type, Int64Type, UInt8Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field};

/// The ClickHouse type for an Arrow field, as written in Native headers and DDL.
pub fn clickhouse_type(field: &Field) -> Result<String, ArrowError> {
    let base = match field.data_type() {
        DataType::Utf8 => "String".to_owned(),
        DataType::UInt8 => "UInt8".to_owned(),
        DataType::Int32 => "Int32".to_owned(),
        DataType::Int64 => "Int64".to_owned(),
        DataType::UInt32 => "UInt32".to_owned(),
        DataType::UInt64 => "UInt64".to_owned(),
        DataType::Float64 => "Float64".to_owned(),
        DataType::Decimal128(precision, scale) if *precision <= 18 => {
            format!("Decimal({precision}, {scale})")
        }
        DataType::List(item) => return Ok(format!("Array({})", clickhouse_type(item)?)),
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "no ClickHouse type for Arrow {other}"
            )));
        }
    };
    Ok(if field.is_nullable() {
        format!("Nullable({base})")
    } else {
        base
    })
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_string(out: &mut Vec<u8>, value: &[u8]) {
    write_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends one Native block holding `batch` to `out`.
pub fn encode_block(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
    write_varint(out, batch.num_columns() as u64);
    write_varint(out, batch.num_rows() as u64);
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        write_string(out, field.name().as_bytes());
        write_string(out, clickhouse_type(field)?.as_bytes());
        if field.is_nullable() && !matches!(field.data_type(), DataType::List(_)) {
            out.extend((0..column.len()).map(|i| u8::from(column.is_null(i))));
        }
        write_values(column.as_ref(), out)?;
    }
    Ok(())
}

/// Encodes `batch` as a Native body (one block).
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    encode_block(batch, &mut out)?;
    Ok(out)
}

/// Writes the values of an array; null slots are written as the type's default value, which
/// ClickHouse ignores because the null map marks them.
fn write_values(array: &dyn Array, out: &mut Vec<u8>) -> Result<(), ArrowError> {
    macro_rules! fixed {
        ($arrow:ty, $native:ty) => {{
            // Null slots of Arrow primitive arrays hold arbitrary values; write zeros there.
            let values = array.as_primitive::<$arrow>();
            out.reserve(values.len() * std::mem::size_of::<$native>());
            if values.null_count() == 0 {
                for value in values.values().iter() {
                    out.extend_from_slice(&(*value as $native).to_le_bytes());
                }
            } else {
                for (i, value) in values.values().iter().enumerate() {
                    let value = if values.is_null(i) {
                        0 as $native
                    } else {
                        *value as $native
                    };
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }};
    }
    match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            let offsets = strings.value_offsets();
            let data = strings.value_data();
            out.reserve(data.len() + strings.len() * 2);
            for i in 0..strings.len() {
                if strings.is_null(i) {
                    out.push(0); // the empty string: ClickHouse's default under a null flag
                } else {
                    write_string(out, &data[offsets[i] as usize..offsets[i + 1] as usize]);
                }
            }
        }
        DataType::UInt8 => fixed!(UInt8Type, u8),
        DataType::Int32 => fixed!(Int32Type, i32),
        DataType::Int64 => fixed!(Int64Type, i64),
        DataType::UInt32 => fixed!(UInt32Type, u32),
        DataType::UInt64 => fixed!(UInt64Type, u64),
        DataType::Float64 => fixed!(Float64Type, f64),
        // Decimal(P, S) is the scaled integer in ClickHouse: 4 bytes up to P = 9, 8 up to 18
        // (found by fuzzing: P ≤ 9 was written as 8 bytes).
        DataType::Decimal128(precision, _) if *precision <= 9 => fixed!(Decimal128Type, i32),
        DataType::Decimal128(precision, _) if *precision <= 18 => fixed!(Decimal128Type, i64),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let base = offsets[0];
            for end in &offsets[1..] {
                out.extend_from_slice(&((end - base) as u64).to_le_bytes());
            }
            let values = list
                .values()
                .slice(base as usize, (offsets[list.len()] - base) as usize);
            write_values(values.as_ref(), out)?;
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "Native encoding of Arrow {other}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::native::decode;
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::Schema;

    #[test]
    fn decodes_what_it_encodes_and_asks_for_more_when_cut() {
        let mut events = crate::ingest::to_arrow::TableBatches::new("p", "demo");
        let text = r#"{"id":"e","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"o","trace_id":"t","type":"generation","name":"n","start_time":"2026-01-01T00:00:00.000001Z","metadata":{"k":"v"},"cost":{"total":0.5}}}"#;
        let event = agenttrace_schemas::Event::parse(text).unwrap();
        events.push(&event, None).unwrap();
        let (_, batch) = events
            .finish("b", agenttrace_schemas::Timestamp::from_micros(0))
            .unwrap()
            .remove(0);
        let body = encode(&batch).unwrap();
        let (decoded, used) = match decode::block(&body) {
            Ok(result) => result,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(used, body.len());
        assert_eq!(decoded, batch);
        assert!(matches!(
            decode::block(&body[..body.len() - 1]),
            Err(decode::DecodeError::NeedMore)
        ));
    }

    #[test]
    fn varints_match_clickhouse() {
        let mut out = Vec::new();
        for value in [0, 127, 128, 300, u64::from(u32::MAX)] {
            write_varint(&mut out, value);
        }
        assert_eq!(
            out,
            [0x00, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f]
        );
    }

    #[test]
    fn maps_arrow_types_to_clickhouse_types() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, false)));
        assert_eq!(
            clickhouse_type(&Field::new("a", list, false)).unwrap(),
            "Array(String)"
        );
        assert_eq!(
            clickhouse_type(&Field::new("b", DataType::Utf8, true)).unwrap(),
            "Nullable(String)"
        );
        assert_eq!(
            clickhouse_type(&Field::new("c", DataType::Decimal128(18, 12), true)).unwrap(),
            "Nullable(Decimal(18, 12))"
        );
        assert!(clickhouse_type(&Field::new("d", DataType::Boolean, false)).is_err());
    }

    #[test]
    fn encodes_nullable_strings_ints_and_arrays() {
        let mut tags = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            false,
        )));
        tags.values().append_value("x");
        tags.append(true);
        tags.append(true);
        let tags = tags.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
            Field::new("t", tags.data_type().clone(), false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("é"), None])),
            Arc::new(Int64Array::from(vec![1, -1])),
            Arc::new(tags),
        ];
        let body = encode(&RecordBatch::try_new(schema, columns).unwrap()).unwrap();
        let mut expected = vec![3, 2];
        expected.extend([1, b's', 16]);
        expected.extend(b"Nullable(String)");
        expected.extend([0, 1]); // null map
        expected.extend([2, 0xc3, 0xa9, 0]); // "é", ""
        expected.extend([1, b'n', 5]);
        expected.extend(b"Int64");
        expected.extend(1i64.to_le_bytes());
        expected.extend((-1i64).to_le_bytes());
        expected.extend([1, b't', 13]);
        expected.extend(b"Array(String)");
        expected.extend(1u64.to_le_bytes());
        expected.extend(1u64.to_le_bytes());
        expected.extend([1, b'x']);
        assert_eq!(body, expected);
    }
}
