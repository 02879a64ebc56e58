//! Rules compiled for use: one pass of one regex over each text for the built-in detectors, then
//! the project's own patterns; events are walked as JSON so that every text they carry is
//! searched and nothing structural (ids, times, types) is touched.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde_json::Value;
use sha2::Sha256;

use crate::detectors::{Trigger, combined, compile_custom, confirmed, ordered};
use crate::rules::Detector;
use crate::rules::{Invalid, Rules};

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

/// One regex over a set of detectors, and each detector's groups in it.
struct Pass {
    regex: Regex,
    groups: Vec<Groups>,
}

impl Pass {
    fn new(detectors: &[Detector]) -> Option<Pass> {
        let regex = combined(detectors)?;
        let index_of = |name: &str| regex.capture_names().position(|n| n == Some(name));
        let groups = detectors
            .iter()
            .enumerate()
            .map(|(i, detector)| Groups {
                detector: *detector,
                whole: index_of(&format!("d{i}")).expect("each detector has its group"),
                secrets: [format!("s{i}"), format!("s{i}_b"), format!("s{i}_c")]
                    .iter()
                    .filter_map(|name| index_of(name))
                    .collect(),
            })
            .collect();
        Some(Pass { regex, groups })
    }
}

pub struct Redactor {
    /// The secret detectors, then the personal-data ones: a match one pass does not confirm (a
    /// run of digits that fails Luhn) cannot hide a secret from the other.
    passes: Vec<Pass>,
    custom: Vec<(String, Regex)>,
    /// When every rule has literals it cannot match without, an event without any is skipped
    /// unparsed.
    trigger: Option<Trigger>,
    /// The key of the replacements' digests, when the rules ask for them.
    hash_key: Option<Vec<u8>>,
    paths: bool,
    /// Whether a string under an AWS credential's name (`SecretAccessKey`, `SessionToken`) is
    /// a cloud key whatever it looks like: JSON output puts the name in the key, not the text.
    named_credentials: bool,
}

/// Whether `key` names an AWS credential, in any spelling (`aws_secret_access_key`,
/// `SecretAccessKey`, `SessionToken`, ...).
fn names_credential(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(
        folded.trim_start_matches("aws"),
        "secretaccesskey" | "sessiontoken" | "secretkey"
    )
}

/// Keys whose string values are never redacted, where the event model puts them (the envelope
/// and its body, not the payloads inside): what ties events together or places them in time. A
/// user id is personal data, and searched.
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

/// Keys whose string values are file paths (redacted only when the rules ask; what such a key
/// holds other than a string, a file's content, say, is always searched).
const PATH_KEYS: [&str; 7] = [
    "path",
    "file_path",
    "filePath",
    "old_path",
    "new_path",
    "cwd",
    "filename",
];

impl Redactor {
    /// Compiles checked rules; `hash_key` keys the digests of `[REDACTED:kind:digest]`
    /// (a secret of the deployment, so a digest cannot be reversed by trying candidates).
    pub fn new(rules: &Rules, hash_key: &[u8]) -> Result<Redactor, Invalid> {
        rules.check()?;
        let detectors = ordered(&rules.detectors);
        let (secrets, personal): (Vec<Detector>, Vec<Detector>) =
            detectors.iter().partition(|d| d.is_secret());
        let passes = [secrets, personal]
            .iter()
            .filter_map(|set| Pass::new(set))
            .collect();
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
            passes,
            custom,
            trigger,
            hash_key: rules.hash.then(|| hash_key.to_vec()),
            paths: rules.paths,
            named_credentials: rules.detectors.contains(&Detector::CloudKey),
        })
    }

    /// Whether these rules redact nothing at all.
    pub fn is_empty(&self) -> bool {
        self.passes.is_empty() && self.custom.is_empty()
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
        for pass in &self.passes {
            let current = redacted.as_deref().unwrap_or(text);
            if let Some(replaced) = self.run(pass, current, counts) {
                redacted = Some(replaced);
            }
        }
        for (name, regex) in &self.custom {
            let current = redacted.as_deref().unwrap_or(text);
            let mut out = String::new();
            let mut last = 0;
            // An empty match (`\b`, `$`) replaces nothing.
            for found in regex.find_iter(current).filter(|m| !m.is_empty()) {
                out.push_str(&current[last..found.start()]);
                out.push_str(&self.marker(name, found.as_str()));
                last = found.end();
                counts.add(name);
            }
            if last > 0 {
                out.push_str(&current[last..]);
                redacted = Some(out);
            }
        }
        redacted
    }

    /// One pass over `text`: its confirmed matches replaced, or `None` when there were none.
    fn run(&self, pass: &Pass, text: &str, counts: &mut Counts) -> Option<String> {
        // Most texts hold nothing: a match test (the DFA alone) is cheaper than a capture search.
        if !pass.regex.is_match(text) {
            return None;
        }
        let mut out = String::new();
        let mut last = 0;
        for captures in pass.regex.captures_iter(text) {
            let Some((groups, whole)) = pass
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
        (last > 0).then(|| {
            out.push_str(&text[last..]);
            out
        })
    }

    /// An event's JSON with every text it carries redacted, or `None` when nothing matched.
    /// What cannot be parsed (nested beyond serde_json's depth limit) is redacted as text and
    /// kept as one JSON string if that broke it: the answer is always JSON.
    pub fn redact_event(&self, json: &str, counts: &mut Counts) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        // An escape (`\u0073k-…`, `:\/\/`) could hide a trigger, so such an event is parsed.
        if let Some(trigger) = &self.trigger
            && !trigger.is_match(json)
            && !json.contains("\\u")
            && !json.contains("\\/")
        {
            return None;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(json) else {
            let redacted = self.redact_text(json, counts)?;
            return Some(match serde_json::value::RawValue::from_string(redacted.clone()) {
                Ok(_) => redacted,
                Err(_) => Value::String(redacted).to_string(),
            });
        };
        self.walk(&mut value, Place::Envelope, counts)
            .then(|| value.to_string())
    }

    /// Redacts the texts in `value` at `place`; whether any changed.
    fn walk(&self, value: &mut Value, place: Place, counts: &mut Counts) -> bool {
        match value {
            Value::String(text) => match self.redact_text(text, counts) {
                Some(redacted) => {
                    *text = redacted;
                    true
                }
                None => false,
            },
            Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
                self.walk(item, Place::Payload, counts) | changed
            }),
            Value::Object(map) => map.iter_mut().fold(false, |changed, (key, item)| {
                if self.named_credentials
                    && let Value::String(secret) = item
                    && !secret.is_empty()
                    && !secret.starts_with("[REDACTED:")
                    && names_credential(key)
                {
                    *secret = self.marker(Detector::CloudKey.kind(), secret);
                    counts.add(Detector::CloudKey.kind());
                    return true;
                }
                let kept = item.is_string()
                    && ((place != Place::Payload && structural(key))
                        || (!self.paths && PATH_KEYS.contains(&key.as_str())));
                let inner = match (place, key.as_str()) {
                    (Place::Envelope, "body") => Place::Body,
                    _ => Place::Payload,
                };
                (!kept && self.walk(item, inner, counts)) | changed
            }),
            _ => false,
        }
    }
}

/// Where a value sits in an event: structure lives in the envelope and its body, free text below.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Envelope,
    Body,
    Payload,
}

/// The key of a project's digests, from the deployment's: digests of the same value differ from
/// project to project, so they tie nothing across tenants.
pub fn project_digest_key(deployment_key: &[u8], project_id: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(deployment_key).expect("HMAC takes any key");
    mac.update(project_id.as_bytes());
    mac.finalize().into_bytes().to_vec()
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
