//! What the read routes share: parameter checks, opaque cursors, time windows that let a
//! newest-first page read only the recent part of a time-ordered index, and rows as people
//! read them.

use agenttrace_schemas::Timestamp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::analytics::AnalyticsError;
use crate::analytics::conditions::Conditions;
use crate::clickhouse::ClickHouse;

/// Settings every read route queries with: integers as JSON numbers (ClickHouse quotes 64-bit
/// ones by default), a time limit, and no writes whatever the SQL says.
const READ_SETTINGS: [(&str, &str); 3] = [
    ("output_format_json_quote_64bit_integers", "0"),
    ("max_execution_time", "30"),
    ("readonly", "1"),
];

/// The narrowest first window a newest-first page reads; each further one is
/// [`WINDOW_GROWTH`] times wider.
pub const MIN_WINDOW_US: i64 = 60_000_000;
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

/// A cursor parameter decoded, when there is one.
pub fn cursor_at(cursor: Option<&str>) -> Result<Option<(i64, String)>, AnalyticsError> {
    cursor.map(decode_cursor).transpose()
}

/// Runs a read the server built, with [`READ_SETTINGS`]. A refusal keeps the statement, for
/// the log.
pub async fn read(clickhouse: &ClickHouse, sql: &str) -> Result<Bytes, AnalyticsError> {
    clickhouse
        .query_with_settings(sql, &READ_SETTINGS)
        .await
        .map_err(|e| AnalyticsError::built(sql, e))
}

/// Where a list's matching rows lie in time: the oldest, the newest, and how many there are
/// (counted without deduplication: an estimate for sizing windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub oldest: i64,
    pub newest: i64,
    pub rows: u64,
}

/// Half-open time windows `[low, high)`, newest first, covering a [`Span`]. The first is sized
/// to hold about twice the rows a page wants were they spread evenly, each next one
/// [`WINDOW_GROWTH`] times wider: a page of recent rows reads about its own worth of the
/// index, however much history there is, and a sparse filter still ends in a few steps.
#[derive(Debug, Clone)]
pub struct Windows {
    high: i64,
    oldest: i64,
    width: i64,
}

impl Windows {
    pub fn over(span: Span, wanted: usize) -> Self {
        let length = span.newest.saturating_sub(span.oldest).saturating_add(1);
        let even = (i128::from(length) * 2 * wanted as i128 / i128::from(span.rows.max(1))) as i64;
        Windows {
            high: span.newest.saturating_add(1),
            oldest: span.oldest,
            width: even.max(MIN_WINDOW_US),
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

/// The [`Span`] of rows of `table` matching `conditions`, or `None` when there are none. Reads
/// only the conditions' columns and the time column, with no deduplication.
pub async fn time_span(
    clickhouse: &ClickHouse,
    table: &str,
    time: &str,
    conditions: &Conditions,
) -> Result<Option<Span>, AnalyticsError> {
    let sql = format!(
        "SELECT count() AS rows, min({time}) AS oldest, max({time}) AS newest FROM {table} {} FORMAT JSONEachRow",
        conditions.render()
    );
    let body = read(clickhouse, &sql).await?;
    let rows = parse_json_rows(&body)?;
    let row = rows.first().cloned().unwrap_or(Value::Null);
    let count = row["rows"].as_u64().unwrap_or(0);
    if count == 0 {
        return Ok(None);
    }
    Ok(Some(Span {
        oldest: row["oldest"].as_i64().unwrap_or_default(),
        newest: row["newest"].as_i64().unwrap_or_default(),
        rows: count,
    }))
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
        let minute = MIN_WINDOW_US;
        // 30 rows over 30 minutes, 3 wanted: the first window holds about 6 minutes' worth.
        let span = Span {
            oldest: 0,
            newest: 30 * minute - 1,
            rows: 30,
        };
        let windows: Vec<_> = Windows::over(span, 3).collect();
        assert_eq!(windows[0], (30 * minute - 6 * minute, 30 * minute));
        assert_eq!(windows[1], (0, 24 * minute));
        assert_eq!(windows.len(), 2);
        // Never narrower than a minute; a single instant is one window.
        let instant = Span {
            oldest: 5,
            newest: 5,
            rows: 1_000_000,
        };
        assert_eq!(Windows::over(instant, 50).collect::<Vec<_>>(), [(5, 6)]);
        let wide = Span {
            oldest: 0,
            newest: 100 * minute,
            rows: 1_000_000,
        };
        assert_eq!(
            Windows::over(wide, 1).next().unwrap().1 - Windows::over(wide, 1).next().unwrap().0,
            minute
        );
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
