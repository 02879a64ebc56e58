//! Rules compiled for use: one pass of one regex over each text for the built-in detectors, then
//! the project's own patterns; events are walked as JSON so that every text they carry is
//! searched and nothing structural (ids, times, types) is touched.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde_json::Value;
use sha2::Sha256;

use crate::detectors::{Trigger, combined, compile_custom, confirmed, ordered};
use crate::rules::{Detector, Invalid, Rules};

/// How many matches of each kind were replaced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    fn add(&mut self, kind: &str) {
        *self.0.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn merge(&mut self, other: Counts) {
        for (kind, count) in other.0 {
            *self.0.entry(kind).or_default() += count;
        }
    }
}

/// A detector's groups in the combined regex: the whole match, and the secret parts.
struct Groups {
    detector: Detector,
    whole: usize,
    secrets: Vec<usize>,
}

pub struct Redactor {
    combined: Option<Regex>,
    groups: Vec<Groups>,
    custom: Vec<(String, Regex)>,
    /// When every rule has literals it cannot match without, an event without any is skipped
    /// unparsed.
    trigger: Option<Trigger>,
    /// The key of the replacements' digests, when the rules ask for them.
    hash_key: Option<Vec<u8>>,
    paths: bool,
}

/// Keys whose values are never redacted: what ties events together or places them in time.
fn structural(key: &str) -> bool {
    key == "id"
        || key == "type"
        || key == "timestamp"
        || (key.ends_with("_id") && key != "user_id")
        || (key.ends_with("Id") && key != "userId")
        || key.ends_with("_time")
        || key.ends_with("Time")
        || key.ends_with("_us")
        || key.ends_with("_sha")
}

/// Keys that hold file paths (redacted only when the rules ask).
const PATH_KEYS: [&str; 8] = [
    "path",
    "file_path",
    "filePath",
    "old_path",
    "new_path",
    "cwd",
    "filename",
    "file",
];

impl Redactor {
    /// Compiles checked rules; `hash_key` keys the digests of `[REDACTED:kind:digest]`
    /// (a secret of the deployment, so a digest cannot be reversed by trying candidates).
    pub fn new(rules: &Rules, hash_key: &[u8]) -> Result<Redactor, Invalid> {
        rules.check()?;
        let detectors = ordered(&rules.detectors);
        let combined = combined(&detectors);
        let groups = match &combined {
            None => Vec::new(),
            Some(regex) => {
                let index_of = |name: &str| regex.capture_names().position(|n| n == Some(name));
                detectors
                    .iter()
                    .enumerate()
                    .map(|(i, detector)| Groups {
                        detector: *detector,
                        whole: index_of(&format!("d{i}")).expect("each detector has its group"),
                        secrets: [format!("s{i}"), format!("s{i}_b")]
                            .iter()
                            .filter_map(|name| index_of(name))
                            .collect(),
                    })
                    .collect()
            }
        };
        let custom = rules
            .custom
            .iter()
            .map(|c| (c.name.clone(), compile_custom(&c.pattern).expect("checked above")))
            .collect::<Vec<_>>();
        let trigger = if custom.is_empty() {
            Trigger::new(&rules.detectors)
        } else {
            None
        };
        Ok(Redactor {
            combined,
            groups,
            custom,
            trigger,
            hash_key: rules.hash.then(|| hash_key.to_vec()),
            paths: rules.paths,
        })
    }

    /// Whether these rules redact nothing at all.
    pub fn is_empty(&self) -> bool {
        self.combined.is_none() && self.custom.is_empty()
    }

    fn marker(&self, kind: &str, secret: &str) -> String {
        match &self.hash_key {
            None => format!("[REDACTED:{kind}]"),
            Some(key) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(kind.as_bytes());
                mac.update(&[0]);
                mac.update(secret.as_bytes());
                let digest = hex::encode(mac.finalize().into_bytes());
                format!("[REDACTED:{kind}:{}]", &digest[..12])
            }
        }
    }

    /// `text` with every match replaced, or `None` when nothing matched.
    pub fn redact_text(&self, text: &str, counts: &mut Counts) -> Option<String> {
        let mut redacted: Option<String> = None;
        // Most texts hold nothing: a match test (the DFA alone) is cheaper than a capture search.
        if let Some(regex) = self.combined.as_ref().filter(|regex| regex.is_match(text)) {
            let mut out = String::new();
            let mut last = 0;
            for captures in regex.captures_iter(text) {
                let Some((groups, whole)) = self
                    .groups
                    .iter()
                    .find_map(|g| captures.get(g.whole).map(|m| (g, m)))
                else {
                    continue;
                };
                if !confirmed(groups.detector, text, whole.start(), whole.end()) {
                    continue;
                }
                let secret = groups
                    .secrets
                    .iter()
                    .find_map(|g| captures.get(*g))
                    .unwrap_or(whole);
                let kind = groups.detector.kind();
                out.push_str(&text[last..secret.start()]);
                out.push_str(&self.marker(kind, secret.as_str()));
                last = secret.end();
                counts.add(kind);
            }
            if last > 0 {
                out.push_str(&text[last..]);
                redacted = Some(out);
            }
        }
        for (name, regex) in &self.custom {
            let current = redacted.as_deref().unwrap_or(text);
            let mut found = 0;
            let replaced = regex.replace_all(current, |captures: &regex::Captures| {
                found += 1;
                self.marker(name, &captures[0])
            });
            if found > 0 {
                for _ in 0..found {
                    counts.add(name);
                }
                redacted = Some(replaced.into_owned());
            }
        }
        redacted
    }

    /// An event's JSON with every text it carries redacted, or `None` when nothing matched.
    /// Text that is not JSON is redacted as text.
    pub fn redact_event(&self, json: &str, counts: &mut Counts) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        // An escape (`\u0073k-…`) could hide a trigger, so such an event is always parsed.
        if let Some(trigger) = &self.trigger
            && !trigger.is_match(json)
            && !json.contains("\\u")
        {
            return None;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(json) else {
            return self.redact_text(json, counts);
        };
        self.walk(&mut value, counts).then(|| value.to_string())
    }

    /// Redacts the texts in `value`; whether any changed.
    fn walk(&self, value: &mut Value, counts: &mut Counts) -> bool {
        match value {
            Value::String(text) => match self.redact_text(text, counts) {
                Some(redacted) => {
                    *text = redacted;
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.walk(item, counts) | changed),
            Value::Object(map) => map.iter_mut().fold(false, |changed, (key, item)| {
                let kept = structural(key) || (!self.paths && PATH_KEYS.contains(&key.as_str()));
                (!kept && self.walk(item, counts)) | changed
            }),
            _ => false,
        }
    }
}

/// Counts the replacements in a stored text by kind (the ETL counts what it loads).
pub fn count_markers(text: &str) -> Counts {
    let mut counts = Counts::default();
    for (at, _) in text.match_indices("[REDACTED:") {
        let rest = &text[at + "[REDACTED:".len()..];
        let kind: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .take(40)
            .collect();
        if !kind.is_empty() {
            counts.add(&kind);
        }
    }
    counts
}
