//! Timestamps on the wire: RFC 3339 strings, kept as integer microseconds since the Unix epoch.
//!
//! Microseconds are what ClickHouse stores (`*_us Int64`, see migrations), so parsing truncates
//! anything finer once, here, and every later stage round-trips exactly.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
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
        if let Some(micros) = parse_utc(text) {
            return Ok(Timestamp(micros));
        }
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

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form agents send, read without chrono's general
/// RFC 3339 parser, in half its instructions (BENCHMARKS.md, `bench ingest`); chrono still
/// checks the date and the time. Anything else — an offset, a leap second, lowercase `t` or
/// `z`, a fraction finer than nanoseconds, an impossible date — is left to chrono's parser,
/// which also words the errors: `None`.
fn parse_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let micros = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let whole = number(digits)?;
            // Truncated to microseconds, as chrono's `timestamp_micros` does.
            if digits.len() >= 6 {
                whole / 10u32.pow(digits.len() as u32 - 6)
            } else {
                whole * 10u32.pow(6 - digits.len() as u32)
            }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(number(&b[0..4])? as i32, number(&b[5..7])?, number(&b[8..10])?)?;
    let time = NaiveTime::from_hms_micro_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
        micros,
    )?;
    Some(date.and_time(time).and_utc().timestamp_micros())
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
        // A visitor rather than `Cow<str>`, whose `Deserialize` always allocates a `String`.
        struct TimestampVisitor;

        impl de::Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string like 2026-01-02T03:04:05.123456Z")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                Timestamp::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(TimestampVisitor)
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
    fn reads_from_json_strings_plain_or_escaped_and_names_what_else_it_expected() {
        let plain: Timestamp = serde_json::from_str(r#""2026-01-02T03:04:05Z""#).unwrap();
        let escaped: Timestamp = serde_json::from_str(r#""2026-01-02T03:04:05\u005a""#).unwrap();
        assert_eq!(plain, escaped);
        let error = serde_json::from_str::<Timestamp>("1767323045").unwrap_err();
        assert!(
            error.to_string().contains("an RFC 3339 timestamp string"),
            "{error}"
        );
        let error = serde_json::from_str::<Timestamp>(r#""yesterday""#).unwrap_err();
        assert!(error.to_string().contains("yesterday"), "{error}");
    }

    #[test]
    fn applies_offsets_and_truncates_nanoseconds() {
        let t = Timestamp::parse("2026-01-02T05:04:05.123456789+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.123456Z");
    }

    /// The fast path answers exactly as chrono does wherever it answers, and answers for every
    /// valid `…Z` timestamp with at most nanoseconds.
    #[test]
    fn the_utc_fast_path_agrees_with_chrono() {
        let chrono = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_micros())
        };
        let mut answered = 0;
        for year in [
            0, 1, 99, 1600, 1969, 1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for time in [
                        "00:00:00", "23:59:59", "12:34:56", "24:00:00", "23:60:00", "23:59:60",
                    ] {
                        for fraction in [
                            "",
                            ".",
                            ".5",
                            ".000001",
                            ".123456",
                            ".1234567",
                            ".123456789",
                            ".1234567891",
                            ".12a",
                            ".999999999",
                        ] {
                            for zone in ["Z", "z", "+02:00", ""] {
                                let text = format!("{year:04}-{month:02}-{day:02}T{time}{fraction}{zone}");
                                let fast = parse_utc(&text);
                                if let Some(micros) = fast {
                                    assert_eq!(chrono(&text), Some(micros), "{text}");
                                    answered += 1;
                                } else if zone == "Z"
                                    && !time.ends_with("60")
                                    && fraction.len() <= 10
                                    && !fraction.contains('a')
                                {
                                    assert_eq!(chrono(&text), None, "{text}: valid but not read fast");
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(answered > 10_000, "{answered}");
        for text in [
            "2026-01-02T03:04:05Z ",
            " 2026-01-02T03:04:05Z",
            "2026-01-02 03:04:05Z",
            "2026-1-02T03:04:05Z",
            "-026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.Z",
            "+2026-01-02T03:04:05Z",
        ] {
            assert_eq!(parse_utc(text), None, "{text}");
        }
    }

    #[test]
    fn rejects_non_rfc3339_with_an_example() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
