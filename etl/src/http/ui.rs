//! The web UI: `ui/dist`, embedded at build time (`etl/build.rs`), served at `/` with no CDN and
//! no file beside the binary. Assets carry content hashes in their names, so they are cached
//! for good; the page itself is revalidated so a new build shows at once.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/embedded_ui.rs"));

/// Scripts, styles and connections only from this origin; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(name: &str) -> Option<&'static [u8]> {
    FILES
        .iter()
        .find(|(path, _)| *path == name)
        .map(|(_, bytes)| *bytes)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn respond(name: &str, bytes: &'static [u8], cache: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /`: the page (every view is a `#/...` route inside it).
pub async fn index() -> Response {
    match file("index.html") {
        Some(bytes) => respond("index.html", bytes, "no-cache"),
        None => ApiError::not_found("this build has no UI").into_response(),
    }
}

/// `GET /assets/{name}`: a hashed script, style or image of the UI.
pub async fn asset(Path(name): Path<String>) -> Response {
    let path = format!("assets/{name}");
    match file(&path) {
        Some(bytes) => respond(&path, bytes, "public, max-age=31536000, immutable"),
        None => ApiError::not_found(format!(
            "no UI asset {name:?}: reload the page to fetch the current build"
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_assets_are_embedded() {
        let page = std::str::from_utf8(file("index.html").expect("index.html is embedded")).unwrap();
        for (name, _) in FILES.iter().filter(|(name, _)| name.starts_with("assets/")) {
            assert!(page.contains(&format!("/{name}")) || name.ends_with(".css") || name.ends_with(".js"));
        }
        assert!(
            FILES.iter().any(|(name, _)| name.ends_with(".js")),
            "a script is embedded"
        );
    }
}
