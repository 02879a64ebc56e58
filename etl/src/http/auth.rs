//! Extractors that authenticate a caller: `ApiKey<S>` accepts a project API key
//! (`Authorization: Bearer public:secret`, or Basic) that holds scope `S` (or `admin`);
//! [`Caller`] accepts a project key, a session token or an organization key, and says whether
//! its holder may do what a route needs in a project or an organization.

use std::marker::PhantomData;
use std::sync::Arc;

use agenttrace_schemas::Scope;
use agenttrace_schemas::credentials::parse_authorization;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use base64::Engine as _;
use uuid::Uuid;

use crate::control::api_keys::{VerifiedKey, verify_key};
use crate::control::identity::{
    ORG_PUBLIC_PREFIX, Role, SESSION_PREFIX, User, session_user, verify_organization_key,
};
use crate::http::error::ApiError;
use crate::http::server::AppState;

/// A scope a route requires, as a type so that the extractor states it in the signature.
pub trait RequiredScope: Send + Sync {
    const SCOPE: Scope;
}

/// Markers for [`ApiKey`]: one per scope a route can require.
pub mod scope {
    use super::{RequiredScope, Scope};

    pub struct Export;
    impl RequiredScope for Export {
        const SCOPE: Scope = Scope::Export;
    }

    pub struct Query;
    impl RequiredScope for Query {
        const SCOPE: Scope = Scope::Query;
    }
}

/// A verified project API key holding the scope `S`.
pub struct ApiKey<S> {
    pub key: VerifiedKey,
    scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequestParts<Arc<AppState>> for ApiKey<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let credentials = parse_authorization(header)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", e.to_string()))?;
        let client = state.postgres.get().await?;
        let key = verify_key(&**client, &credentials.public_key, &credentials.secret_key)
            .await
            .map_err(ApiError::unavailable)??;
        if !S::SCOPE.granted_by(&key.scopes) {
            let scope = S::SCOPE;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing_scope",
                format!(
                    "this key lacks the `{scope}` scope; create one with `agenttrace key create --project {} --scope {scope}`",
                    key.project_id
                ),
            ));
        }
        Ok(ApiKey {
            key,
            scope: PhantomData,
        })
    }
}

/// Who is calling a control-plane route: a project API key, a signed-in user (a session
/// token), or an organization key.
pub enum Caller {
    Key(VerifiedKey),
    User(User),
    Organization(Uuid),
}

/// What a project-level action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read project data: the `read` scope, or the viewer role.
    Read,
    /// Write project data (prompts, datasets, experiments, evaluators): `manage`, or member.
    Write,
    /// Manage the project and its API keys: `admin`, or the admin role.
    Administer,
}

impl Need {
    fn scope(self) -> Scope {
        match self {
            Need::Read => Scope::Read,
            Need::Write => Scope::Manage,
            Need::Administer => Scope::Admin,
        }
    }

    fn role(self) -> Role {
        match self {
            Need::Read => Role::Viewer,
            Need::Write => Role::Member,
            Need::Administer => Role::Admin,
        }
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

impl Caller {
    /// Checks that the caller may do what `need` says in `project`.
    pub async fn require(&self, state: &AppState, project: Uuid, need: Need) -> Result<(), ApiError> {
        match self {
            Caller::Key(key) if key.project_id != project => Err(forbidden(format!(
                "this API key belongs to project {}, not {project}",
                key.project_id
            ))),
            Caller::Key(key) if need.scope().granted_by(&key.scopes) => Ok(()),
            Caller::Key(key) => Err(forbidden(format!(
                "this API key lacks the `{scope}` scope; create one with `agenttrace key create --project {} --scope {scope}`",
                key.project_id,
                scope = need.scope()
            ))),
            Caller::User(user) => {
                let client = state.postgres.get().await?;
                let row = client
                    .query_opt(
                        "SELECT p.organization_id, m.role FROM projects p
                         LEFT JOIN organization_members m ON m.organization_id = p.organization_id AND m.user_id = $2
                         WHERE p.id = $1",
                        &[&project, &user.id],
                    )
                    .await
                    .map_err(ApiError::unavailable)?
                    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no project {project}")))?;
                let role: Option<String> = row.get(1);
                let Some(role) = role else {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no project {project}"),
                    ));
                };
                let role = Role::parse(&role)?;
                if role >= need.role() {
                    Ok(())
                } else {
                    Err(forbidden(format!(
                        "this needs the {} role in the project's organization; you are a {}",
                        need.role().as_str(),
                        role.as_str()
                    )))
                }
            }
            Caller::Organization(organization) => {
                let client = state.postgres.get().await?;
                let owner: Option<Uuid> = client
                    .query_opt("SELECT organization_id FROM projects WHERE id = $1", &[&project])
                    .await
                    .map_err(ApiError::unavailable)?
                    .map(|row| row.get(0));
                if owner == Some(*organization) {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no project {project}"),
                    ))
                }
            }
        }
    }

    /// The caller's role in `organization` (an organization key acts as its admin; project keys
    /// have none).
    pub async fn role_in(&self, state: &AppState, organization: Uuid) -> Result<Option<Role>, ApiError> {
        match self {
            Caller::Key(_) => Ok(None),
            Caller::Organization(own) => Ok((*own == organization).then_some(Role::Admin)),
            Caller::User(user) => {
                let client = state.postgres.get().await?;
                let role: Option<String> = client
                    .query_opt(
                        "SELECT role FROM organization_members WHERE organization_id = $1 AND user_id = $2",
                        &[&organization, &user.id],
                    )
                    .await
                    .map_err(ApiError::unavailable)?
                    .map(|row| row.get(0));
                role.map(|r| Role::parse(&r)).transpose().map_err(ApiError::from)
            }
        }
    }

    /// Checks that the caller has at least `needed` in `organization`.
    pub async fn require_role(
        &self,
        state: &AppState,
        organization: Uuid,
        needed: Role,
    ) -> Result<(), ApiError> {
        match self.role_in(state, organization).await? {
            Some(role) if role >= needed => Ok(()),
            Some(role) => Err(forbidden(format!(
                "this needs the {} role in the organization; you are a {}",
                needed.as_str(),
                role.as_str()
            ))),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no organization {organization}"),
            )),
        }
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("missing Authorization header: send `Bearer <session token>` or an API key as Basic or Bearer `public:secret`")
            })?;
        let client = state.postgres.get().await?;
        if let Some(token) = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| t.starts_with(SESSION_PREFIX))
        {
            let user = session_user(&**client, token).await??;
            return Ok(Caller::User(user));
        }
        let pair = match header.split_once(' ') {
            Some((scheme, value)) if scheme.eq_ignore_ascii_case("basic") => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|_| unauthorized("the Basic credentials are not base64"))?;
                String::from_utf8(decoded).map_err(|_| unauthorized("the Basic credentials are not UTF-8"))?
            }
            Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => value.trim().to_owned(),
            _ => return Err(unauthorized("use the Basic or Bearer scheme")),
        };
        let (public, secret) = pair
            .split_once(':')
            .ok_or_else(|| unauthorized("an API key is `public_key:secret_key`"))?;
        if public.starts_with(ORG_PUBLIC_PREFIX) {
            return verify_organization_key(&**client, public, secret)
                .await?
                .map(Caller::Organization)
                .ok_or_else(|| unauthorized("unknown or revoked organization key, or a wrong secret"));
        }
        let key = verify_key(&**client, public, secret)
            .await
            .map_err(ApiError::unavailable)??;
        Ok(Caller::Key(key))
    }
}
