//! What the read routes share: parameter checks, opaque cursors, time windows that let a
//! newest-first page read only the recent part of a time-ordered index, and rows as people
//! read them.

use agenttrace_schemas::Timestamp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::analytics::AnalyticsError;
use crate::clickhouse::{ClickHouse, quote};

/// Settings every read route queries with: integers as JSON numbers (ClickHouse quotes 64-bit
/// ones by default), a time limit, and no writes whatever the SQL says.
pub const READ_SETTINGS: [(&str, &str); 3] = [
    ("output_format_json_quote_64bit_integers", "0"),
    ("max_execution_time", "30"),
    ("readonly", "1"),
];

/// The first window a newest-first page reads; each further one is [`WINDOW_GROWTH`] times wider.
pub const FIRST_WINDOW_US: i64 = 3_600_000_000;
pub const WINDOW_GROWTH: i64 = 4;

pub fn invalid(field: &'static str, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::InvalidParameter {
        field,
        message: message.into(),
    }
}

/// An RFC 3339 parameter as microseconds.
pub fn time_bound(value: Option<&str>, field: &'static str) -> Result<Option<i64>, AnalyticsError> {
    value
        .map(|text| {
            Timestamp::parse(text)
                .map(Timestamp::as_micros)
                .map_err(|e| invalid(field, format!("{e}; use RFC 3339, e.g. 2026-11-30T12:00:00Z")))
        })
        .transpose()
}

/// `limit` checked against 1..=`max`, `default` when absent.
pub fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, AnalyticsError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid("limit", format!("must be between 1 and {max}")))
    }
}

/// A page position: the (time, id) of the last row shown, opaque to callers.
pub fn encode_cursor(time_us: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{time_us}:{id}"))
}

pub fn decode_cursor(cursor: &str) -> Result<(i64, String), AnalyticsError> {
    let bad = || {
        invalid(
            "cursor",
            "not a cursor this API gave out; pass `next_cursor` as it came",
        )
    };
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (time, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((time.parse().map_err(|_| bad())?, id.to_owned()))
}

/// The SQL condition "after the cursor" for a newest-first page over `time`, `id`.
pub fn before_cursor(cursor: Option<&str>, time: &str, id: &str) -> Result<Option<String>, AnalyticsError> {
    cursor
        .map(|cursor| {
            let (at, last) = decode_cursor(cursor)?;
            Ok(format!(
                "({time} < {at} OR ({time} = {at} AND {id} < {}))",
                quote(&last)
            ))
        })
        .transpose()
}

/// Half-open time windows `[low, high)`, newest first, covering `[oldest, newest]`: an hour
/// first, then each [`WINDOW_GROWTH`] times wider. A page stops once it has its rows, so a
/// page of recent rows reads about an hour of the index, however much history there is.
#[derive(Debug, Clone)]
pub struct Windows {
    high: i64,
    oldest: i64,
    width: i64,
}

impl Windows {
    pub fn new(oldest: i64, newest: i64) -> Self {
        Windows {
            high: newest.saturating_add(1),
            oldest,
            width: FIRST_WINDOW_US,
        }
    }
}

impl Iterator for Windows {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<(i64, i64)> {
        if self.high <= self.oldest {
            return None;
        }
        let low = self.high.saturating_sub(self.width).max(self.oldest);
        let window = (low, self.high);
        self.high = low;
        self.width = self.width.saturating_mul(WINDOW_GROWTH);
        Some(window)
    }
}

/// The oldest and newest `time` among rows of `table` matching `condition`, or `None` when
/// there are none. Reads only the time column, which the time indexes sort by.
pub async fn time_span(
    clickhouse: &ClickHouse,
    table: &str,
    time: &str,
    condition: &str,
) -> Result<Option<(i64, i64)>, AnalyticsError> {
    let sql = format!(
        "SELECT count() AS rows, min({time}) AS oldest, max({time}) AS newest FROM {table} WHERE {condition} FORMAT JSONEachRow"
    );
    let body = clickhouse.query_with_settings(&sql, &READ_SETTINGS).await?;
    let rows = parse_json_rows(&body)?;
    let row = rows.first().cloned().unwrap_or(Value::Null);
    if row["rows"].as_u64().unwrap_or(0) == 0 {
        return Ok(None);
    }
    Ok(Some((
        row["oldest"].as_i64().unwrap_or_default(),
        row["newest"].as_i64().unwrap_or_default(),
    )))
}

/// JSONEachRow output as JSON objects, as ClickHouse sent them.
pub fn parse_json_rows(body: &[u8]) -> Result<Vec<Value>, AnalyticsError> {
    body.split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line).map_err(|e| {
                AnalyticsError::InvalidFormat(format!("ClickHouse sent a row that is not JSON: {e}"))
            })
        })
        .collect()
}

/// JSONEachRow output as rows people read (see [`readable`]).
pub fn parse_rows(body: &[u8]) -> Result<Vec<Value>, AnalyticsError> {
    parse_json_rows(body)?
        .into_iter()
        .map(|row| match row {
            Value::Object(row) => Ok(readable(row)),
            other => Err(AnalyticsError::InvalidFormat(format!(
                "ClickHouse sent a row that is not an object: {other}"
            ))),
        })
        .collect()
}

/// A stored row as people read it: no storage bookkeeping, metadata as an object, and input,
/// output and attributes as the JSON they were sent as.
pub fn readable(mut row: Map<String, Value>) -> Value {
    for internal in ["project_id", "project_name", "version", "event_id"] {
        row.remove(internal);
    }
    if let (Some(Value::Array(keys)), Some(Value::Array(values))) =
        (row.remove("metadata_keys"), row.remove("metadata_values"))
    {
        let metadata: Map<String, Value> = keys
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), value)))
            .collect();
        row.insert("metadata".into(), Value::Object(metadata));
    }
    for field in ["input", "output", "model_parameters"] {
        if let Some(Value::String(text)) = row.get(field)
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            row.insert(field.into(), parsed);
        }
    }
    Value::Object(row)
}

/// Cuts `rows` to `limit`, and gives the cursor of the last one kept when more remained.
pub fn next_page(rows: &mut Vec<Value>, limit: usize, time: &str) -> Option<String> {
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(|last| {
        encode_cursor(
            last[time].as_i64().unwrap_or_default(),
            last["id"].as_str().unwrap_or_default(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let cursor = encode_cursor(1_796_069_037_754_586, "trace:with:colons");
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            (1_796_069_037_754_586, "trace:with:colons".to_owned())
        );
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("no-colon"),
            &URL_SAFE_NO_PAD.encode("x:id"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_cover_the_span_newest_first_without_overlap() {
        let hour = FIRST_WINDOW_US;
        let windows: Vec<_> = Windows::new(0, 30 * hour).collect();
        assert_eq!(
            windows,
            [
                (29 * hour + 1, 30 * hour + 1),
                (25 * hour + 1, 29 * hour + 1),
                (9 * hour + 1, 25 * hour + 1),
                (0, 9 * hour + 1),
            ]
        );
        assert_eq!(Windows::new(5, 5).collect::<Vec<_>>(), [(5, 6)]);
    }

    #[test]
    fn rows_read_as_sent() {
        let row = readable(
            json!({"id": "o", "project_id": "p", "version": 3, "metadata_keys": ["k"], "metadata_values": ["v"],
                   "input": "{\"q\":1}", "output": "plain text"})
            .as_object()
            .unwrap()
            .clone(),
        );
        assert_eq!(
            row,
            json!({"id": "o", "input": {"q": 1}, "output": "plain text", "metadata": {"k": "v"}})
        );
    }
}
