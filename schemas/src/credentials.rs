//! Agent credentials from the `Authorization` header.
//!
//! Two forms are accepted, so both native clients and Langfuse-style OTLP exporters work
//! unchanged: `Basic base64(public_key:secret_key)` and `Bearer public_key:secret_key`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub public_key: String,
    pub secret_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("missing Authorization header; send `Authorization: Basic base64(public_key:secret_key)`")]
    Missing,
    #[error("unsupported Authorization scheme {0:?}; use Basic or Bearer")]
    UnsupportedScheme(String),
    #[error("the Basic credentials are not valid base64")]
    InvalidBase64,
    #[error("credentials must be `public_key:secret_key` (pk-at-… and sk-at-…)")]
    Malformed,
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(header: Option<&str>) -> Result<Credentials, CredentialsError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(CredentialsError::Missing)?;
    let (scheme, value) = header.split_once(' ').ok_or(CredentialsError::Malformed)?;
    let pair = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(value.trim())
            .map_err(|_| CredentialsError::InvalidBase64)?;
        String::from_utf8(decoded).map_err(|_| CredentialsError::InvalidBase64)?
    } else if scheme.eq_ignore_ascii_case("bearer") {
        value.trim().to_owned()
    } else {
        return Err(CredentialsError::UnsupportedScheme(scheme.to_owned()));
    };
    let (public_key, secret_key) = pair.split_once(':').ok_or(CredentialsError::Malformed)?;
    if !public_key.starts_with("pk-at-") || !secret_key.starts_with("sk-at-") {
        return Err(CredentialsError::Malformed);
    }
    Ok(Credentials {
        public_key: public_key.to_owned(),
        secret_key: secret_key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(public_key: &str, secret_key: &str) -> Result<Credentials, CredentialsError> {
        Ok(Credentials {
            public_key: public_key.into(),
            secret_key: secret_key.into(),
        })
    }

    #[test]
    fn accepts_basic_and_bearer() {
        let basic = format!("Basic {}", STANDARD.encode("pk-at-1:sk-at-2"));
        assert_eq!(parse_authorization(Some(&basic)), ok("pk-at-1", "sk-at-2"));
        assert_eq!(
            parse_authorization(Some("bearer pk-at-1:sk-at-2")),
            ok("pk-at-1", "sk-at-2")
        );
        // A secret may itself contain ':' — only the first one separates.
        assert_eq!(
            parse_authorization(Some("Bearer pk-at-1:sk-at-2:3")),
            ok("pk-at-1", "sk-at-2:3")
        );
    }

    #[test]
    fn explains_what_is_wrong() {
        assert_eq!(parse_authorization(None), Err(CredentialsError::Missing));
        assert_eq!(parse_authorization(Some("  ")), Err(CredentialsError::Missing));
        assert_eq!(
            parse_authorization(Some("Digest abc")),
            Err(CredentialsError::UnsupportedScheme("Digest".into()))
        );
        assert_eq!(
            parse_authorization(Some("Basic ***")),
            Err(CredentialsError::InvalidBase64)
        );
        assert_eq!(
            parse_authorization(Some("Bearer sk-at-2")),
            Err(CredentialsError::Malformed)
        );
        assert_eq!(
            parse_authorization(Some("Bearer sk-at-2:pk-at-1")),
            Err(CredentialsError::Malformed)
        );
    }
}
