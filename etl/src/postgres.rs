//! PostgreSQL connections: one-off clients for the CLI, a pool for the service.
//!
//! `sslmode=require` in `DATABASE_URL` connects over TLS and verifies the server's certificate
//! and name, against the Mozilla roots and, for a private CA, the PEM file that
//! `sslrootcert=` in the URL or `PGSSLROOTCERT` names (as libpq reads them); `disable` and
//! `prefer` (the default) connect in plain text.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Opens one connection and drives it on the runtime until the client is dropped.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (url, root) = split_root_cert(url);
    let config: tokio_postgres::Config = url.parse()?;
    let client = if config.get_ssl_mode() == SslMode::Require {
        let (client, connection) = config.connect(tls(root)).await?;
        tokio::spawn(drive(connection));
        client
    } else {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(drive(connection));
        client
    };
    Ok(client)
}

async fn drive<C: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: C) {
    if let Err(error) = connection.await {
        tracing::warn!(%error, "PostgreSQL connection closed");
    }
}

/// The URL without `sslrootcert=` (which the driver does not know), and the file it names.
fn split_root_cert(url: &str) -> (String, Option<std::path::PathBuf>) {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(key, value)| {
            if key == "sslrootcert" {
                root = Some(std::path::PathBuf::from(value.as_ref()));
                None
            } else {
                Some((key.into_owned(), value.into_owned()))
            }
        })
        .collect();
    if root.is_none() {
        return (url.to_owned(), None);
    }
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    (parsed.to_string(), root)
}

/// TLS that verifies the server: the Mozilla roots, and the certificates of `root` (from the
/// URL) or else of `PGSSLROOTCERT`.
fn tls(root: Option<std::path::PathBuf>) -> MakeRustlsConnect {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root.or_else(|| std::env::var_os("PGSSLROOTCERT").map(Into::into)) {
        match CertificateDer::pem_file_iter(&path).and_then(|certs| certs.collect::<Result<Vec<_>, _>>()) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(error) => {
                tracing::error!(path = %path.to_string_lossy(), %error, "PGSSLROOTCERT could not be read")
            }
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// A connection pool that fails fast (a few seconds) when PostgreSQL is down, so callers can
/// answer 503 instead of hanging.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, String> {
    let (url, root) = split_root_cert(url);
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("invalid DATABASE_URL: {e}"))?;
    let recycling = || ManagerConfig {
        recycling_method: RecyclingMethod::Verified,
    };
    let manager = if config.get_ssl_mode() == SslMode::Require {
        Manager::from_config(config, tls(root), recycling())
    } else {
        Manager::from_config(config, NoTls, recycling())
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(3)))
        .wait_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| e.to_string())
}

/// Whether `error` may pass if the caller tries again: the connection is gone or was refused,
/// or the server is shutting down, overloaded, or chose this transaction to fail
/// (serialization failure, deadlock). Anything else (a constraint, bad data, a wrong query) will
/// fail the same way again.
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match error.code() {
        Some(code) => {
            let class = &code.code()[..2];
            // 08 connection exception, 53 insufficient resources, 57 operator intervention
            // (admin shutdown, cannot connect now), 58 system error (I/O).
            matches!(class, "08" | "53" | "57" | "58")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
        }
        // No SQLSTATE: the connection closed, an I/O error, or a timeout. A value that does not
        // convert (a bug of ours) also has none, but names its column in its message.
        None => {
            error.is_closed()
                || std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
                || error.to_string().contains("timed out")
        }
    }
}

/// A PostgreSQL error as one line: the server's message and detail when it sent one.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_root_cert;

    #[test]
    fn the_root_certificate_is_taken_out_of_the_url() {
        let (url, root) = split_root_cert("postgres://u@db:5432/app?sslmode=require&sslrootcert=/etc/ca.pem");
        assert_eq!(url, "postgres://u@db:5432/app?sslmode=require");
        assert_eq!(root.unwrap().to_str(), Some("/etc/ca.pem"));
        let plain = "postgres://u@db/app";
        assert_eq!(split_root_cert(plain), (plain.to_owned(), None));
    }
}
