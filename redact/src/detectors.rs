//! What each built-in detector matches, what a match must also pass (a checksum), and the cheap
//! literal triggers that tell the edge an event may hold a secret at all.

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexBuilder};

use crate::rules::{Detector, Rules};

/// A detector's pattern. Where only part of a match is the secret (the token after `Bearer`,
/// the password in a URL), that part is the group named `secret` (or `secret_b`).
pub(crate) fn pattern(detector: Detector) -> &'static str {
    match detector {
        Detector::LlmApiKey => {
            r"(?-u:\b)(?:sk-ant-[a-z]{3,6}\d{2}-[A-Za-z0-9_\-]{32,}|sk-(?:proj-|svcacct-|admin-|at-)?[A-Za-z0-9_\-]{20,}|AIza[0-9A-Za-z_\-]{35}|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}|hf_[A-Za-z0-9]{30,}|pplx-[A-Za-z0-9]{40,}|r8_[A-Za-z0-9]{30,})"
        }
        Detector::CloudKey => {
            r"(?-u:\b)(?:(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,}|glpat-[A-Za-z0-9_\-]{20,}|xox[abposr]-[A-Za-z0-9\-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{20,}|ya29\.[0-9A-Za-z_\-]{20,})|(?i:(?:aws_?)?secret_?access_?key)[\x22']?\s*[=:]\s*[\x22']?(?P<secret>[A-Za-z0-9/+]{40})(?-u:\b)|(?i:session_?token)[\x22']?\s*[=:]\s*[\x22']?(?P<secret_c>[A-Za-z0-9/+=]{100,})|AccountKey=(?P<secret_b>[A-Za-z0-9+/]{80,}={0,2})"
        }
        Detector::Jwt => r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        Detector::BearerToken => {
            r"(?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)"
        }
        Detector::PrivateKey => {
            r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]*)"
        }
        Detector::UrlPassword => {
            r"(?-u:\b)[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/?#@\x22'<>]{1,128}:(?P<secret>[^\s/?#@\x22'<>]{1,256})@"
        }
        Detector::Email => {
            r"(?-u:\b)[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}(?-u:\b)"
        }
        Detector::Phone => {
            r"(?:\+\d{1,3}[ .\-]?)?\(\d{1,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}(?-u:\b)|(?:\+\d{1,3}[ .\-]?)?(?-u:\b)\d{2,4}[ .\-]\d{3,4}[ .\-]?\d{3,4}(?-u:\b)|\+\d{8,15}(?-u:\b)"
        }
        Detector::CardNumber => r"(?-u:\b)\d(?:[ \-]?\d){12,18}(?-u:\b)",
        Detector::Iban => r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
        Detector::IpAddress => {
            r"(?-u:\b)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?-u:\b)|(?-u:\b)(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?-u:\b)|(?-u:\b)(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}(?-u:\b)"
        }
    }
}

/// Literals one of which is in an event's raw JSON text whenever the detector can match a text
/// in it, or `None` when there are none (digits, say): then every event is searched. Case as
/// written (the detectors accept these spellings only), so that the search runs at memory speed.
/// A JSON escape could hide one, so escaped events are searched anyway.
fn triggers(detector: Detector) -> Option<&'static [&'static str]> {
    Some(match detector {
        Detector::LlmApiKey => &["sk-", "AIza", "gsk_", "xai-", "hf_", "pplx-", "r8_"],
        Detector::CloudKey => &[
            "AKIA",
            "ASIA",
            "ABIA",
            "ACCA",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "glpat-",
            "xox",
            "k_live_",
            "k_test_",
            "ya29.",
            "ecret_access_key",
            "ECRET_ACCESS_KEY",
            "ecret_Access_Key",
            "AccountKey=",
        ],
        Detector::Jwt => &["eyJ"],
        Detector::BearerToken => &["earer", "EARER", "asic", "ASIC"],
        Detector::PrivateKey => &["-----BEGIN"],
        Detector::UrlPassword => &["://", ":\\/\\/"],
        Detector::Email => &["@"],
        Detector::Phone | Detector::CardNumber | Detector::Iban | Detector::IpAddress => return None,
    })
}

/// Whether the match `text[start..end]` is what the detector claims (a card number passes Luhn,
/// an IBAN mod 97, an IPv6 address parses and is more than a `::` in code, a phone number is
/// not part of a longer run of digit groups).
pub(crate) fn confirmed(detector: Detector, text: &str, start: usize, end: usize) -> bool {
    let found = &text[start..end];
    match detector {
        Detector::CardNumber => luhn(found),
        Detector::Iban => iban(found),
        Detector::IpAddress if found.contains(':') => {
            found.parse::<std::net::Ipv6Addr>().is_ok() && found.matches(':').count() >= 3
        }
        Detector::Phone => {
            // Looks at a character or two beside the match, never more (a text of many
            // numbers must not cost its length for each).
            fn digit_near(mut chars: impl Iterator<Item = char>) -> bool {
                match chars.next() {
                    Some(' ' | '.' | '-') => chars.next().is_some_and(|c| c.is_ascii_digit()),
                    Some(c) => c.is_ascii_digit(),
                    None => false,
                }
            }
            found.bytes().filter(u8::is_ascii_digit).count() >= 7
                && !digit_near(text[end..].chars())
                && !digit_near(text[..start].chars().rev())
        }
        _ => true,
    }
}

/// The order detectors are tried in where two could match at the same place: the most specific
/// first (a card number is also a run of digit groups, as a phone number is).
fn priority(detector: Detector) -> u8 {
    match detector {
        Detector::PrivateKey => 0,
        Detector::Jwt => 1,
        Detector::LlmApiKey | Detector::CloudKey => 2,
        Detector::UrlPassword | Detector::BearerToken => 3,
        Detector::CardNumber | Detector::Iban => 4,
        Detector::Email | Detector::IpAddress => 5,
        Detector::Phone => 6,
    }
}

/// `detectors` in the order the combined regex tries them.
pub(crate) fn ordered(detectors: &[Detector]) -> Vec<Detector> {
    let mut ordered = detectors.to_vec();
    ordered.sort_by_key(|d| priority(*d));
    ordered
}

fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| match i % 2 {
            1 if d * 2 > 9 => d * 2 - 9,
            1 => d * 2,
            _ => *d,
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u64 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => u64::from(c as u8 - b'0'),
            'A'..='Z' => u64::from(c as u8 - b'A') + 10,
            _ => return false,
        };
        let width = if value >= 10 { 100 } else { 10 };
        remainder = (remainder * width + value) % 97;
    }
    remainder == 1
}

/// A custom pattern, compiled as the edge runs it (bounded in size).
pub(crate) fn compile_custom(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(Rules::MAX_COMPILED_BYTES)
        .build()
}

/// The detectors' patterns as one alternation, each in a group named `d<index>` (the index into
/// `detectors`), searched in one pass.
pub(crate) fn combined(detectors: &[Detector]) -> Option<Regex> {
    if detectors.is_empty() {
        return None;
    }
    let alternatives: Vec<String> = detectors
        .iter()
        .enumerate()
        .map(|(index, detector)| {
            let inner = pattern(*detector).replace("(?P<secret", &format!("(?P<s{index}"));
            format!("(?P<d{index}>{inner})")
        })
        .collect();
    Some(
        RegexBuilder::new(&alternatives.join("|"))
            .size_limit(32 * 1024 * 1024)
            .build()
            .expect("the built-in patterns compile"),
    )
}

/// Whether an event may hold what `detectors` find: their literals, searched at once
/// (Aho-Corasick, leftmost-first so that its SIMD searcher runs). Many events hold a URL, few
/// a password in one: where `://` is all that was found, the `user:password@` shape must follow.
pub(crate) struct Trigger {
    literals: AhoCorasick,
    /// The ids of the URL literals, and the shape they need.
    url: Option<(Vec<usize>, Regex)>,
}

impl Trigger {
    /// `None` when one of `detectors` has no literals.
    pub(crate) fn new(detectors: &[Detector]) -> Option<Trigger> {
        let parts: Option<Vec<&[&str]>> = detectors.iter().map(|d| triggers(*d)).collect();
        let literals: Vec<&str> = parts?.concat();
        if literals.is_empty() {
            return None;
        }
        let url_literals = triggers(Detector::UrlPassword).unwrap_or_default();
        let ids: Vec<usize> = literals
            .iter()
            .enumerate()
            .filter(|(_, l)| url_literals.contains(l))
            .map(|(i, _)| i)
            .collect();
        let url = (!ids.is_empty()).then(|| {
            let shape = r#":(?://|\\/\\/)[^\s:/?#@"'<>]{1,128}:[^\s/?#@"'<>]{1,256}@"#;
            (ids, Regex::new(shape).expect("the URL shape compiles"))
        });
        let literals = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(literals)
            .expect("the triggers build");
        Some(Trigger { literals, url })
    }

    pub(crate) fn is_match(&self, json: &str) -> bool {
        let mut url_checked = false;
        for found in self.literals.find_iter(json) {
            match &self.url {
                Some((ids, shape)) if ids.contains(&found.pattern().as_usize()) => {
                    if !url_checked && shape.is_match(json) {
                        return true;
                    }
                    url_checked = true;
                }
                _ => return true,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_and_trigger_compiles() {
        for detector in Detector::ALL {
            Regex::new(pattern(detector)).unwrap();
        }
        assert!(combined(&Detector::ALL).is_some());
        let secrets = Trigger::new(&Rules::default().detectors).unwrap();
        assert!(Trigger::new(&Detector::ALL).is_none(), "digits have no trigger");
        assert!(!secrets.is_match(r#"{"input":"npm i @types/node; see @jane at https://x.dev/a"}"#));
        assert!(secrets.is_match(r#"{"input":"postgres://app:pw@db"}"#));
        assert!(
            secrets.is_match(r#"{"input":"postgres:\/\/app:pw@db"}"#),
            "PHP escapes slashes"
        );
        assert!(secrets.is_match(r#"{"input":"key sk-proj-x"}"#));
        let emails = Trigger::new(&[Detector::Email, Detector::UrlPassword]).unwrap();
        assert!(emails.is_match(r#"{"input":"see @jane"}"#));
    }

    #[test]
    fn checksums() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("0000000000000000"), "a run of one digit is no card");
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("DE89370400440532013001"));
        let whole = |detector, text: &str| confirmed(detector, text, 0, text.len());
        assert!(whole(Detector::IpAddress, "2001:db8::8a2e:370:7334"));
        assert!(!whole(Detector::IpAddress, "a::b"), "Rust paths are no addresses");
        assert!(confirmed(Detector::Phone, "call 415 555 2671.", 5, 17));
        assert!(
            !confirmed(Detector::Phone, "4111 1111 1111 1112", 0, 14),
            "digits go on"
        );
    }
}
