//! API keys in PostgreSQL.
//!
//! A key is a pair: a public key (`pk-at-…`, an identifier, safe to log) and a secret key
//! (`sk-at-…`, 256 random bits, shown once). Only the SHA-256 of the secret is stored, and it
//! is compared in constant time.

use agenttrace_schemas::Scope;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::ControlError;

pub const PUBLIC_KEY_PREFIX: &str = "pk-at-";
pub const SECRET_KEY_PREFIX: &str = "sk-at-";

/// A freshly created key; `secret_key` exists only here and is never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key_id: Uuid,
    pub project_id: Uuid,
    pub public_key: String,
    pub secret_key: String,
}

/// A key that verified: what it may do and for which project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: Uuid,
    pub project_id: Uuid,
    pub public_key: String,
    pub scopes: Vec<Scope>,
}

/// Why a key pair was refused, worded for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error(
        "malformed key: expected a public key starting with {PUBLIC_KEY_PREFIX:?} and a secret key starting with {SECRET_KEY_PREFIX:?}"
    )]
    Malformed,
    #[error("unknown public key")]
    UnknownPublicKey,
    #[error("the secret key does not match the public key")]
    WrongSecret,
    #[error("this API key has been revoked")]
    Revoked,
    #[error("the key's project is archived and accepts no more data")]
    ProjectArchived,
}

impl KeyRejection {
    /// A stable machine-readable name, for metrics and API responses.
    pub fn code(self) -> &'static str {
        match self {
            KeyRejection::Malformed => "malformed_key",
            KeyRejection::UnknownPublicKey => "unknown_public_key",
            KeyRejection::WrongSecret => "wrong_secret",
            KeyRejection::Revoked => "revoked_key",
            KeyRejection::ProjectArchived => "project_archived",
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Scopes as stored; the database allows only known names (a CHECK constraint).
fn scopes_of(stored: Vec<String>) -> Vec<Scope> {
    stored.iter().filter_map(|name| name.parse().ok()).collect()
}

pub fn hash_secret(secret_key: &str) -> [u8; 32] {
    Sha256::digest(secret_key.as_bytes()).into()
}

pub async fn create_key(
    client: &impl GenericClient,
    project_id: Uuid,
    scopes: &[Scope],
    note: Option<&str>,
) -> Result<NewKey, ControlError> {
    let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    if client
        .query_opt("SELECT 1 FROM projects WHERE id = $1", &[&project_id])
        .await?
        .is_none()
    {
        return Err(ControlError::NoSuchProject(project_id));
    }
    let public_key = format!("{PUBLIC_KEY_PREFIX}{}", hex::encode(random_bytes::<16>()));
    let secret_key = format!(
        "{SECRET_KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let hint = format!("{}…", &secret_key[..SECRET_KEY_PREFIX.len() + 4]);
    let row = client
        .query_one(
            "INSERT INTO api_keys (project_id, public_key, secret_hash, secret_hint, scopes, note)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &project_id,
                &public_key,
                &hash_secret(&secret_key).as_slice(),
                &hint,
                &scopes,
                &note,
            ],
        )
        .await?;
    Ok(NewKey {
        key_id: row.get("id"),
        project_id,
        public_key,
        secret_key,
    })
}

/// Revokes a key by its public key. Revoking twice keeps the first revocation time.
pub async fn revoke_key(client: &impl GenericClient, public_key: &str) -> Result<(), ControlError> {
    let updated = client
        .execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE public_key = $1",
            &[&public_key],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NoSuchKey(public_key.to_owned()));
    }
    Ok(())
}

/// A key as listed (never with its secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyListing {
    pub public_key: String,
    pub secret_hint: String,
    pub scopes: Vec<Scope>,
    #[schema(required = true)]
    pub note: Option<String>,
    pub revoked: bool,
}

impl KeyListing {
    /// What [`KeyListing::from_row`] reads, selected from `api_keys`.
    pub const COLUMNS: &'static str =
        "public_key, secret_hint, scopes, note, revoked_at IS NOT NULL AS revoked";

    pub fn from_row(row: &Row) -> Self {
        KeyListing {
            public_key: row.get("public_key"),
            secret_hint: row.get("secret_hint"),
            scopes: scopes_of(row.get("scopes")),
            note: row.get("note"),
            revoked: row.get("revoked"),
        }
    }
}

pub async fn list_keys(
    client: &impl GenericClient,
    project_id: Uuid,
) -> Result<Vec<KeyListing>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM api_keys WHERE project_id = $1 ORDER BY created_at",
                KeyListing::COLUMNS
            ),
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(KeyListing::from_row).collect())
}

/// Checks a key pair against PostgreSQL.
///
/// The secret is checked before revocation and project state, so nobody learns anything
/// about a key without holding its secret.
pub async fn verify_key(
    client: &impl GenericClient,
    public_key: &str,
    secret_key: &str,
) -> Result<Result<VerifiedKey, KeyRejection>, tokio_postgres::Error> {
    if !public_key.starts_with(PUBLIC_KEY_PREFIX) || !secret_key.starts_with(SECRET_KEY_PREFIX) {
        return Ok(Err(KeyRejection::Malformed));
    }
    let row = client
        .query_opt(
            "SELECT k.id, k.project_id, k.secret_hash, k.scopes,
                    k.revoked_at IS NOT NULL AS revoked, p.archived_at IS NOT NULL AS archived
             FROM api_keys k JOIN projects p ON p.id = k.project_id
             WHERE k.public_key = $1",
            &[&public_key],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err(KeyRejection::UnknownPublicKey));
    };
    let stored: &[u8] = row.get("secret_hash");
    if !bool::from(stored.ct_eq(&hash_secret(secret_key))) {
        return Ok(Err(KeyRejection::WrongSecret));
    }
    if row.get::<_, bool>("revoked") {
        return Ok(Err(KeyRejection::Revoked));
    }
    if row.get::<_, bool>("archived") {
        return Ok(Err(KeyRejection::ProjectArchived));
    }
    Ok(Ok(VerifiedKey {
        key_id: row.get("id"),
        project_id: row.get("project_id"),
        public_key: public_key.to_owned(),
        scopes: scopes_of(row.get("scopes")),
    }))
}

/// Revokes a key of `project` (a key of another project is no key of this one).
pub async fn revoke_project_key(
    client: &impl GenericClient,
    project_id: Uuid,
    public_key: &str,
) -> Result<(), ControlError> {
    let updated = client
        .execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE public_key = $1 AND project_id = $2",
            &[&public_key, &project_id],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NoSuchKey(public_key.to_owned()));
    }
    Ok(())
}
