//! PostgreSQL connections: one-off clients for the CLI, a pool for the service.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Client, NoTls};

/// Opens one connection and drives it on the runtime until the client is dropped.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// A connection pool that fails fast (a few seconds) when PostgreSQL is down, so callers can
/// answer 503 instead of hanging.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("invalid DATABASE_URL: {e}"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
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
