//! Where a signed batch's events lie, found without reading their tokens.
//!
//! The ETL reads every event once, strictly, as it becomes a row (`pipeline::convert`). Before
//! that it needs only the batch's envelope and each event's byte range. serde_json finds those
//! by tokenizing every event (`RawValue`), which cost ~6,000 instructions per 500-byte event, more
//! than half of what reading the event itself costs. Here an event's end is found by following
//! strings and brackets alone; the event's own text is still read strictly later, so an event
//! that is not valid JSON inside balanced brackets becomes a dead letter there, named, while the
//! batch's other events load. Anything this scan cannot lay out is left to serde_json
//! ([`batch_layout`] returns `None`), which then names what is wrong with the batch.

use std::ops::Range;

/// A batch body split into its envelope and its events.
#[derive(Debug, PartialEq, Eq)]
pub struct BatchLayout {
    /// The body with its `events` array emptied (`"events":[]`), for serde_json to read strictly.
    pub envelope: String,
    /// Each element of the `events` array, as byte ranges of the body.
    pub events: Vec<Range<usize>>,
}

/// The layout of a batch body: a JSON object with an `events` array among its members. `None`
/// when the body does not have that shape (the caller reads it with serde_json instead).
pub fn batch_layout(body: &str) -> Option<BatchLayout> {
    let bytes = body.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    expect(bytes, at, b'{')?;
    at += 1;
    let mut envelope = String::with_capacity(256);
    let mut copied = 0;
    let mut events = None;
    loop {
        at = skip_whitespace(bytes, at);
        expect(bytes, at, b'"')?;
        let key_end = string_end(bytes, at)?;
        let key = &body[at + 1..key_end - 1];
        at = skip_whitespace(bytes, key_end);
        expect(bytes, at, b':')?;
        at = skip_whitespace(bytes, at + 1);
        if key == "events" && events.is_none() && bytes.get(at) == Some(&b'[') {
            let (ranges, end) = elements(bytes, at)?;
            envelope.push_str(&body[copied..=at]);
            envelope.push(']');
            copied = end;
            events = Some(ranges);
            at = end;
        } else {
            at = value_end(bytes, at)?;
        }
        at = skip_whitespace(bytes, at);
        match bytes.get(at)? {
            b',' => at += 1,
            b'}' => break,
            _ => return None,
        }
    }
    // The rest of the body, whatever follows the object included, is serde_json's to judge.
    envelope.push_str(&body[copied..]);
    Some(BatchLayout {
        envelope,
        events: events?,
    })
}

fn expect(bytes: &[u8], at: usize, byte: u8) -> Option<()> {
    (bytes.get(at) == Some(&byte)).then_some(())
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The elements of the array opening at `at`, and where the array ends.
fn elements(bytes: &[u8], at: usize) -> Option<(Vec<Range<usize>>, usize)> {
    let mut ranges = Vec::new();
    let mut at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b']') {
        return Some((ranges, at + 1));
    }
    loop {
        let end = value_end(bytes, at)?;
        ranges.push(at..end);
        at = skip_whitespace(bytes, end);
        match bytes.get(at)? {
            b',' => at = skip_whitespace(bytes, at + 1),
            b']' => return Some((ranges, at + 1)),
            _ => return None,
        }
    }
}

/// Where the value starting at `at` ends (one past its last byte).
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => container_end(bytes, at),
        // A literal or a number runs to the next delimiter; its spelling is checked when read.
        _ => {
            let length = bytes[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))?;
            (length > 0).then_some(at + length)
        }
    }
}

/// One past the quote that closes the string opening at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut at = at + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at] == b'"' {
            return Some(at + 1);
        }
        // An escape: the next byte is escaped (a `\uXXXX`'s hex digits need no care).
        at += 2;
    }
}

/// Bytes that matter inside an object or array: quotes and brackets.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'}' as usize] = true;
    table[b'[' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// One past the bracket that closes the object or array opening at `at`. Brackets are counted
/// regardless of kind: in valid JSON they nest, and invalid JSON is refused when read.
fn container_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = at;
    loop {
        while !STRUCTURAL[usize::from(*bytes.get(at)?)] {
            at += 1;
        }
        match bytes[at] {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    /// What serde_json makes of a body: the envelope's members and the events' texts.
    fn serde_layout(body: &str) -> Option<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Events<'a> {
            #[serde(borrow)]
            events: Vec<&'a RawValue>,
        }
        let events: Events = serde_json::from_str(body).ok()?;
        Some(events.events.iter().map(|e| e.get().to_owned()).collect())
    }

    fn texts(body: &str, layout: &BatchLayout) -> Vec<String> {
        layout.events.iter().map(|r| body[r.clone()].to_owned()).collect()
    }

    #[test]
    fn events_are_found_as_serde_json_finds_them() {
        let bodies = [
            r#"{"events":[]}"#,
            r#"{"a":1,"events":[{"id":"x"}],"b":"c"}"#,
            r#" { "events" : [ {"id":"a\"}{]["} , {"k":[1,{"n":[]}],"s":"\\"},1,"two",null,true,-2.5e3 ] , "z" : {"events":[1]} } "#,
            r#"{"x":"\\\"","events":[{"é":"ü\u00e9\n"},[],{}],"y":[{"a":"]"}]}"#,
        ];
        for body in bodies {
            let layout = batch_layout(body).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(Some(texts(body, &layout)), serde_layout(body), "{body}");
            let envelope: serde_json::Value = serde_json::from_str(&layout.envelope).unwrap();
            assert_eq!(envelope["events"], serde_json::json!([]), "{body}");
        }
    }

    #[test]
    fn the_envelope_keeps_every_other_member_and_whatever_follows() {
        let body = r#"{"batch_id":"b","events":[{"id":"1"}, {"id":"2"}],"edge_id":"e"} tail"#;
        let layout = batch_layout(body).unwrap();
        assert_eq!(
            layout.envelope,
            r#"{"batch_id":"b","events":[],"edge_id":"e"} tail"#
        );
    }

    #[test]
    fn what_cannot_be_laid_out_is_left_to_serde_json() {
        for body in [
            "",
            "{not json",
            "[]",
            "{}",
            r#"{"events":{}}"#,
            r#"{"other":[1]}"#,
            r#"{"events":[{"id":"unterminated}]}"#,
            r#"{"events":[{"a":1}}]}"#,
            r#"{"events":[1 2]}"#,
            r#"{"events":[,]}"#,
            r#"{"events":[1,]"#,
            r#"{"events":[{"a":"\"#,
            r#"{"events":[] "x":1}"#,
        ] {
            assert_eq!(batch_layout(body), None, "{body}");
        }
    }

    #[test]
    fn a_second_events_member_stays_in_the_envelope_for_serde_json_to_refuse() {
        let layout = batch_layout(r#"{"events":[1],"events":[2]}"#).unwrap();
        assert_eq!(layout.envelope, r#"{"events":[],"events":[2]}"#);
    }
}
