//! Timestamps on the wire: RFC 3339 strings, kept as integer microseconds since the Unix epoch.
//!
//! Microseconds are what ClickHouse stores (`*_us Int64`, see migrations), so parsing truncates
//! anything finer once, here, and every later stage round-trips exactly.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// Parses an RFC 3339 timestamp (`2026-01-02T03:04:05.123456Z`, any offset).
    pub fn parse(text: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Timestamp(t.timestamp_micros()))
            .map_err(|e| {
                format!("expected an RFC 3339 timestamp like 2026-01-02T03:04:05.123456Z, got {text:?} ({e})")
            })
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_datetime().to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 timestamp; precision beyond microseconds is truncated."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_microseconds() {
        let t = Timestamp::parse("2026-01-02T03:04:05.123456Z").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.123456Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn applies_offsets_and_truncates_nanoseconds() {
        let t = Timestamp::parse("2026-01-02T05:04:05.123456789+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.123456Z");
    }

    #[test]
    fn rejects_non_rfc3339_with_an_example() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
