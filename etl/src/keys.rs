//! Projects and API keys in PostgreSQL.
//!
//! A key is a pair: a public key (`pk-at-…`, an identifier, safe to log) and a secret key
//! (`sk-at-…`, 256 random bits, shown once). Only the SHA-256 of the secret is stored, and it
//! is compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub const PUBLIC_KEY_PREFIX: &str = "pk-at-";
pub const SECRET_KEY_PREFIX: &str = "sk-at-";
pub const SCOPES: &[&str] = &["ingest", "export", "query", "admin"];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no project with id {0}")]
    NoSuchProject(Uuid),
    #[error("no API key {0}")]
    NoSuchKey(String),
    #[error("several organizations are named {0:?}; pass its id instead")]
    AmbiguousOrganization(String),
    #[error("unknown scope {0:?}; scopes are {SCOPES:?}")]
    UnknownScope(String),
    #[error("a project named {name:?} already exists in that organization")]
    ProjectExists { name: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

impl From<tokio_postgres::Error> for KeyError {
    fn from(error: tokio_postgres::Error) -> Self {
        KeyError::Postgres(crate::postgres::describe(&error))
    }
}

/// A freshly created key; `secret_key` exists only here and is never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key_id: Uuid,
    pub project_id: Uuid,
    pub public_key: String,
    pub secret_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub retention_days: Option<i32>,
}

/// A key that verified: what it may do and for which project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: Uuid,
    pub project_id: Uuid,
    pub public_key: String,
    pub scopes: Vec<String>,
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

pub fn hash_secret(secret_key: &str) -> [u8; 32] {
    Sha256::digest(secret_key.as_bytes()).into()
}

/// Finds the organization named `name`, creating it when there is none.
pub async fn ensure_organization(client: &impl GenericClient, name: &str) -> Result<Uuid, KeyError> {
    let rows = client
        .query("SELECT id FROM organizations WHERE name = $1", &[&name])
        .await?;
    match rows.as_slice() {
        [] => Ok(client
            .query_one(
                "INSERT INTO organizations (name) VALUES ($1) RETURNING id",
                &[&name],
            )
            .await?
            .get(0)),
        [row] => Ok(row.get(0)),
        _ => Err(KeyError::AmbiguousOrganization(name.to_owned())),
    }
}

pub async fn create_project(
    client: &impl GenericClient,
    organization_id: Uuid,
    name: &str,
    retention_days: Option<i32>,
) -> Result<Project, KeyError> {
    let row = client
        .query_one(
            "INSERT INTO projects (organization_id, name, retention_days) VALUES ($1, $2, $3) RETURNING id",
            &[&organization_id, &name, &retention_days],
        )
        .await
        .map_err(|error| match error.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => KeyError::ProjectExists {
                name: name.to_owned(),
            },
            _ => KeyError::from(error),
        })?;
    Ok(Project {
        id: row.get(0),
        organization_id,
        name: name.to_owned(),
        retention_days,
    })
}

pub async fn list_projects(client: &impl GenericClient) -> Result<Vec<Project>, KeyError> {
    let rows = client
        .query(
            "SELECT id, organization_id, name, retention_days FROM projects
             WHERE archived_at IS NULL ORDER BY created_at, name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Project {
            id: row.get(0),
            organization_id: row.get(1),
            name: row.get(2),
            retention_days: row.get(3),
        })
        .collect())
}

pub async fn create_key(
    client: &impl GenericClient,
    project_id: Uuid,
    scopes: &[String],
    note: Option<&str>,
) -> Result<NewKey, KeyError> {
    if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(KeyError::UnknownScope(unknown.clone()));
    }
    if client
        .query_opt("SELECT 1 FROM projects WHERE id = $1", &[&project_id])
        .await?
        .is_none()
    {
        return Err(KeyError::NoSuchProject(project_id));
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
        key_id: row.get(0),
        project_id,
        public_key,
        secret_key,
    })
}

/// Revokes a key by its public key. Revoking twice keeps the first revocation time.
pub async fn revoke_key(client: &impl GenericClient, public_key: &str) -> Result<(), KeyError> {
    let updated = client
        .execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE public_key = $1",
            &[&public_key],
        )
        .await?;
    if updated == 0 {
        return Err(KeyError::NoSuchKey(public_key.to_owned()));
    }
    Ok(())
}

/// A key as listed (never with its secret).
#[derive(Debug, Clone)]
pub struct KeyListing {
    pub public_key: String,
    pub secret_hint: String,
    pub scopes: Vec<String>,
    pub note: Option<String>,
    pub revoked: bool,
}

pub async fn list_keys(client: &impl GenericClient, project_id: Uuid) -> Result<Vec<KeyListing>, KeyError> {
    let rows = client
        .query(
            "SELECT public_key, secret_hint, scopes, note, revoked_at IS NOT NULL
             FROM api_keys WHERE project_id = $1 ORDER BY created_at",
            &[&project_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| KeyListing {
            public_key: row.get(0),
            secret_hint: row.get(1),
            scopes: row.get(2),
            note: row.get(3),
            revoked: row.get(4),
        })
        .collect())
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
                    k.revoked_at IS NOT NULL, p.archived_at IS NOT NULL
             FROM api_keys k JOIN projects p ON p.id = k.project_id
             WHERE k.public_key = $1",
            &[&public_key],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err(KeyRejection::UnknownPublicKey));
    };
    let stored: &[u8] = row.get(2);
    if !bool::from(stored.ct_eq(&hash_secret(secret_key))) {
        return Ok(Err(KeyRejection::WrongSecret));
    }
    if row.get::<_, bool>(4) {
        return Ok(Err(KeyRejection::Revoked));
    }
    if row.get::<_, bool>(5) {
        return Ok(Err(KeyRejection::ProjectArchived));
    }
    Ok(Ok(VerifiedKey {
        key_id: row.get(0),
        project_id: row.get(1),
        public_key: public_key.to_owned(),
        scopes: row.get(3),
    }))
}
