//! A project's redaction rules: which built-in detectors are on, its own patterns, and how a
//! match is replaced. The ETL keeps them (PostgreSQL) and hands them to the edge with each key
//! check; the edge applies them before anything is buffered.

use serde::{Deserialize, Serialize};

/// A built-in detector. The secret ones are on unless a project turns them off; the personal-data
/// ones are off unless it turns them on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Detector {
    /// LLM vendors' API keys: OpenAI, Anthropic, Google AI, Groq, xAI, Hugging Face, Perplexity,
    /// Replicate (and AgentTrace's own secret keys, which are `sk-…` too).
    LlmApiKey,
    /// Cloud and platform credentials: AWS access key ids and secret keys, GitHub, GitLab and
    /// Slack tokens, Stripe keys, Google OAuth tokens, Azure storage account keys.
    CloudKey,
    /// JSON Web Tokens.
    Jwt,
    /// The credential of an `Authorization: Bearer …` or `Basic …` header.
    BearerToken,
    /// PEM private key blocks (an unterminated one too).
    PrivateKey,
    /// The password in `scheme://user:password@host`.
    UrlPassword,
    Email,
    /// Phone numbers written with an international prefix or grouped digits.
    Phone,
    /// Payment card numbers (13 to 19 digits passing the Luhn check).
    CardNumber,
    /// IBANs passing their mod-97 check.
    Iban,
    /// IPv4 and IPv6 addresses.
    IpAddress,
}

impl Detector {
    pub const ALL: [Detector; 11] = [
        Detector::LlmApiKey,
        Detector::CloudKey,
        Detector::Jwt,
        Detector::BearerToken,
        Detector::PrivateKey,
        Detector::UrlPassword,
        Detector::Email,
        Detector::Phone,
        Detector::CardNumber,
        Detector::Iban,
        Detector::IpAddress,
    ];

    /// The kind a replacement names: `[REDACTED:llm_api_key]`.
    pub fn kind(self) -> &'static str {
        match self {
            Detector::LlmApiKey => "llm_api_key",
            Detector::CloudKey => "cloud_key",
            Detector::Jwt => "jwt",
            Detector::BearerToken => "bearer_token",
            Detector::PrivateKey => "private_key",
            Detector::UrlPassword => "url_password",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::CardNumber => "card_number",
            Detector::Iban => "iban",
            Detector::IpAddress => "ip_address",
        }
    }

    /// Secrets (on by default) rather than personal data (opt-in).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            Detector::LlmApiKey
                | Detector::CloudKey
                | Detector::Jwt
                | Detector::BearerToken
                | Detector::PrivateKey
                | Detector::UrlPassword
        )
    }
}

/// A project's own pattern: what it matches is replaced by `[REDACTED:<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomPattern {
    /// 1 to 40 of `a-z`, `0-9` and `_`; the kind the replacement names.
    pub name: String,
    /// A regular expression (Rust's `regex` syntax: no look-around, no backreferences).
    pub pattern: String,
}

/// What a project redacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rules {
    /// The built-in detectors that are on.
    pub detectors: Vec<Detector>,
    /// At most [`Rules::MAX_CUSTOM`].
    #[serde(default)]
    pub custom: Vec<CustomPattern>,
    /// Replace with `[REDACTED:kind:hash]`, the hash a keyed digest of the text, so that the
    /// same secret can be told apart from another (and followed across events) without being kept.
    #[serde(default)]
    pub hash: bool,
    /// Redact file paths too (`path`, `file_path`, `cwd`, ...): off, since a path rarely holds a
    /// secret and a redacted one no longer says which file an agent touched.
    #[serde(default)]
    pub paths: bool,
}

impl Default for Rules {
    /// Every secret detector, no personal-data one.
    fn default() -> Self {
        Rules {
            detectors: Detector::ALL.into_iter().filter(|d| d.is_secret()).collect(),
            custom: Vec::new(),
            hash: false,
            paths: false,
        }
    }
}

/// Why rules cannot be used: the field at fault and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

impl Rules {
    pub const MAX_CUSTOM: usize = 20;
    pub const MAX_PATTERN_CHARS: usize = 500;
    /// The most a custom pattern may compile to: every pattern runs over every text at the edge.
    pub const MAX_COMPILED_BYTES: usize = 256 * 1024;

    /// Checks the rules as the ETL stores them and the edge compiles them.
    pub fn check(&self) -> Result<(), Invalid> {
        let invalid = |field: String, message: String| Err(Invalid { field, message });
        let mut seen = std::collections::HashSet::new();
        for (index, detector) in self.detectors.iter().enumerate() {
            if !seen.insert(detector) {
                return invalid(
                    format!("detectors[{index}]"),
                    format!("{} is listed twice", detector.kind()),
                );
            }
        }
        if self.custom.len() > Self::MAX_CUSTOM {
            return invalid(
                "custom".into(),
                format!("{} patterns; at most {}", self.custom.len(), Self::MAX_CUSTOM),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (index, custom) in self.custom.iter().enumerate() {
            let name_ok = (1..=40).contains(&custom.name.len())
                && custom
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return invalid(
                    format!("custom[{index}].name"),
                    format!("{:?}: 1 to 40 of a-z, 0-9 and _", custom.name),
                );
            }
            if Detector::ALL.iter().any(|d| d.kind() == custom.name) || !names.insert(&custom.name) {
                return invalid(
                    format!("custom[{index}].name"),
                    format!("{:?} is taken by a detector or another pattern", custom.name),
                );
            }
            let chars = custom.pattern.chars().count();
            if chars == 0 || chars > Self::MAX_PATTERN_CHARS {
                return invalid(
                    format!("custom[{index}].pattern"),
                    format!("1 to {} characters, not {chars}", Self::MAX_PATTERN_CHARS),
                );
            }
            match crate::detectors::compile_custom(&custom.pattern) {
                Ok(regex) if regex.is_match("") => {
                    return invalid(
                        format!("custom[{index}].pattern"),
                        "matches the empty text; it must match something".into(),
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    return invalid(
                        format!("custom[{index}].pattern"),
                        format!("not a usable regular expression: {error}"),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_on_by_default_and_personal_data_off() {
        let rules = Rules::default();
        assert!(rules.detectors.contains(&Detector::LlmApiKey));
        assert!(rules.detectors.contains(&Detector::PrivateKey));
        assert!(!rules.detectors.contains(&Detector::Email));
        assert!(rules.check().is_ok());
    }

    #[test]
    fn custom_patterns_are_named_bounded_and_compiled() {
        let with = |name: &str, pattern: &str| Rules {
            custom: vec![CustomPattern {
                name: name.into(),
                pattern: pattern.into(),
            }],
            ..Rules::default()
        };
        assert!(with("employee_id", r"EMP-\d{6}").check().is_ok());
        assert_eq!(with("Employee", "x").check().unwrap_err().field, "custom[0].name");
        assert_eq!(with("email", "x").check().unwrap_err().field, "custom[0].name");
        assert!(
            with("x", "(")
                .check()
                .unwrap_err()
                .message
                .starts_with("not a usable regular expression")
        );
        assert!(
            with("x", "a*")
                .check()
                .unwrap_err()
                .message
                .contains("empty text")
        );
        assert!(
            with("x", "(a{1000}){1000}").check().is_err(),
            "too large compiled"
        );
        assert!(with("x", &"a".repeat(501)).check().is_err());
        let twice = Rules {
            detectors: vec![Detector::Jwt, Detector::Jwt],
            ..Rules::default()
        };
        assert_eq!(twice.check().unwrap_err().field, "detectors[1]");
    }

    #[test]
    fn rules_read_as_the_api_writes_them() {
        let rules: Rules = serde_json::from_str(
            r#"{"detectors": ["llm_api_key", "email"], "custom": [{"name": "ticket", "pattern": "T-\\d+"}], "hash": true}"#,
        )
        .unwrap();
        assert_eq!(rules.detectors, [Detector::LlmApiKey, Detector::Email]);
        assert!(rules.hash && !rules.paths);
        assert!(serde_json::from_str::<Rules>(r#"{"detectors": ["nope"]}"#).is_err());
    }
}
