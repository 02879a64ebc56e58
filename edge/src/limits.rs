//! Request limits, each with the error a client gets when it is exceeded.

/// What one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request body, after gzip decompression (413 beyond).
    pub max_body_bytes: usize,
    /// Events (or OTLP spans / log records) in one request (413 beyond).
    pub max_events: usize,
    /// One event's JSON (rejected on its own beyond).
    pub max_event_bytes: usize,
    /// One attribute value of an OTLP span or log record (that item is rejected beyond).
    pub max_attribute_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 5 * 1024 * 1024,
            max_events: 1_000,
            max_event_bytes: 1024 * 1024,
            max_attribute_bytes: 64 * 1024,
        }
    }
}

/// A request refused as a whole, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is {size} bytes; the limit is {limit} bytes (split it into several requests)")]
    BodyTooLarge { size: usize, limit: usize },
    #[error(
        "the request holds {count} events; the limit is {limit} per request (split it into several requests)"
    )]
    TooManyEvents { count: usize, limit: usize },
    #[error("unsupported content type {0:?}; send application/json or application/x-protobuf")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}; send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    Malformed(String),
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BodyTooLarge { .. } | RequestError::TooManyEvents { .. } => 413,
            RequestError::UnsupportedContentType(_) | RequestError::UnsupportedEncoding(_) => 415,
            RequestError::Malformed(_) => 400,
        }
    }

    /// A short machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::BodyTooLarge { .. } => "body_too_large",
            RequestError::TooManyEvents { .. } => "too_many_events",
            RequestError::UnsupportedContentType(_) => "unsupported_content_type",
            RequestError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            RequestError::Malformed(_) => "malformed",
        }
    }
}

/// The body's encoding, from `Content-Type` (parameters such as charset are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    /// `json_only` routes (the native API) refuse protobuf.
    pub fn from_content_type(content_type: Option<&str>, json_only: bool) -> Result<Encoding, RequestError> {
        let essence = content_type
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "" => Ok(Encoding::Json),
            "application/x-protobuf" | "application/protobuf" if !json_only => Ok(Encoding::Protobuf),
            _ => Err(RequestError::UnsupportedContentType(essence)),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Protobuf => "application/x-protobuf",
        }
    }
}

/// The body as sent, decompressed if gzip; the size limit applies to the decompressed bytes, so
/// a small gzip bomb is refused without being inflated past the limit.
pub fn decode_body(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Vec<u8>, RequestError> {
    use std::io::Read;
    let too_large = |size| RequestError::BodyTooLarge {
        size,
        limit: limits.max_body_bytes,
    };
    match content_encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => {
            if body.len() > limits.max_body_bytes {
                return Err(too_large(body.len()));
            }
            Ok(body.to_vec())
        }
        Some("gzip") => {
            let mut out = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(body).take(limits.max_body_bytes as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| RequestError::Malformed(format!("the gzip body cannot be decompressed: {e}")))?;
            if out.len() > limits.max_body_bytes {
                return Err(too_large(out.len()));
            }
            Ok(out)
        }
        Some(other) => Err(RequestError::UnsupportedEncoding(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_types_and_encodings() {
        assert_eq!(Encoding::from_content_type(None, true), Ok(Encoding::Json));
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8"), true),
            Ok(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/x-protobuf"), false),
            Ok(Encoding::Protobuf)
        );
        let refused = Encoding::from_content_type(Some("application/x-protobuf"), true).unwrap_err();
        assert_eq!(refused.status(), 415);
        assert_eq!(
            Encoding::from_content_type(Some("text/plain"), false)
                .unwrap_err()
                .status(),
            415
        );
    }

    #[test]
    fn bodies_are_limited_after_decompression() {
        let limits = Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        };
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&[b'a'; 100_000]).unwrap();
        let bomb = gzip.finish().unwrap();
        assert!(bomb.len() < 1000);
        let error = decode_body(&bomb, Some("gzip"), &limits).unwrap_err();
        assert_eq!(error.status(), 413);
        assert!(error.to_string().contains("the limit is 1000 bytes"), "{error}");
        assert_eq!(decode_body(b"{}", None, &limits).unwrap(), b"{}");
        assert_eq!(decode_body(b"{}", Some("br"), &limits).unwrap_err().status(), 415);
        assert_eq!(
            decode_body(b"not gzip", Some("gzip"), &limits)
                .unwrap_err()
                .status(),
            400
        );
    }
}
