//! Extractors that authenticate a caller and authorize what the route needs, before the handler
//! runs, so that a handler cannot forget to check:
//!
//! - [`ApiKey<S>`]: a project API key (`Authorization: Bearer public:secret`, or Basic) holding
//!   scope `S` (or `admin`): exports and `/v1/query`.
//! - [`ProjectAccess<N>`]: any caller (project key, session, organization key) who may do what
//!   [`need`] `N` says in the project the path (or `?project_id=`, or the key) names.
//! - [`OrganizationAccess<R>`]: any caller holding at least [`role`] `R` in the path's organization.
//! - [`KeyProject<N>`]: the project of the project key calling a Langfuse route.
//! - [`Caller`]: who calls, for the few routes that need no project or organization.

use std::marker::PhantomData;
use std::sync::Arc;

use agenttrace_schemas::Scope;
use agenttrace_schemas::credentials::parse_authorization;
use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use base64::Engine as _;
use uuid::Uuid;

use crate::control::ControlError;
use crate::control::api_keys::{VerifiedKey, verify_key};
use crate::control::identity::{
    self, Actor, ORG_PUBLIC_PREFIX, Role, SESSION_PREFIX, User, session_user, verify_organization_key,
};
use crate::control::projects;
use crate::http::audit::AuditSlot;
use crate::http::error::ApiError;
use crate::http::request::bad;
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
            .map_err(ControlError::from)??;
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
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set_caller(&Caller::Key(key.clone()));
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

impl Caller {
    /// Who the caller is, for the records of what it did: `user:<email>`, `key:<public key>` or
    /// `organization-key:<organization id>`.
    pub fn label(&self) -> String {
        match self {
            Caller::User(user) => format!("user:{}", user.email),
            Caller::Key(key) => format!("key:{}", key.public_key),
            Caller::Organization(organization) => format!("organization-key:{organization}"),
        }
    }

    /// Checks that the caller may do what `need` says in `project`. A project the caller cannot
    /// see at all is a 404, as if it did not exist.
    pub async fn require(&self, state: &AppState, project: Uuid, need: Need) -> Result<(), ApiError> {
        match self {
            Caller::Key(key) if key.project_id != project => Err(ApiError::forbidden(format!(
                "this API key belongs to project {}, not {project}",
                key.project_id
            ))),
            Caller::Key(key) if need.scope().granted_by(&key.scopes) => Ok(()),
            Caller::Key(key) => Err(ApiError::forbidden(format!(
                "this API key lacks the `{scope}` scope; create one with `agenttrace key create --project {} --scope {scope}`",
                key.project_id,
                scope = need.scope()
            ))),
            Caller::User(user) => {
                let client = state.postgres.get().await?;
                match identity::role_in_project(&**client, project, user.id).await? {
                    None => Err(ApiError::not_found(format!("no project {project}"))),
                    Some(role) if role >= need.role() => Ok(()),
                    Some(role) => Err(ApiError::forbidden(format!(
                        "this needs the {} role in the project's organization; you are a {}",
                        need.role().as_str(),
                        role.as_str()
                    ))),
                }
            }
            Caller::Organization(organization) => {
                let client = state.postgres.get().await?;
                match projects::organization_of(&**client, project).await {
                    Ok(owner) if owner == *organization => Ok(()),
                    Ok(_) | Err(ControlError::NoSuchProject(_)) => {
                        Err(ApiError::not_found(format!("no project {project}")))
                    }
                    Err(other) => Err(other.into()),
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
                Ok(identity::role_of(&**client, organization, user.id).await?)
            }
        }
    }

    /// Who the caller is when changing `organization`'s members: a user, or an organization
    /// key of that organization (an admin). A project key is no one there: 404, as for a
    /// missing organization.
    pub fn actor(&self, organization: Uuid) -> Result<Actor, ApiError> {
        match self {
            Caller::User(user) => Ok(Actor::User(user.id)),
            Caller::Organization(own) if *own == organization => Ok(Actor::Role(Role::Admin)),
            _ => Err(ApiError::not_found(format!("no organization {organization}"))),
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
            Some(role) => Err(ApiError::forbidden(format!(
                "this needs the {} role in the organization; you are a {}",
                needed.as_str(),
                role.as_str()
            ))),
            None => Err(ApiError::not_found(format!("no organization {organization}"))),
        }
    }
}

/// What a route needs in a project, as a type, so the handler's signature states it and the
/// extractor enforces it before the handler runs.
pub trait Needs: Send + Sync {
    const NEED: Need;
}

/// Markers for [`ProjectAccess`] and [`KeyProject`].
pub mod need {
    use super::{Need, Needs};

    pub struct Read;
    impl Needs for Read {
        const NEED: Need = Need::Read;
    }

    pub struct Write;
    impl Needs for Write {
        const NEED: Need = Need::Write;
    }

    pub struct Administer;
    impl Needs for Administer {
        const NEED: Need = Need::Administer;
    }
}

/// The least role a route needs in an organization, as a type.
pub trait AtLeast: Send + Sync {
    const ROLE: Role;
}

/// Markers for [`OrganizationAccess`].
pub mod role {
    use super::{AtLeast, Role};

    pub struct Viewer;
    impl AtLeast for Viewer {
        const ROLE: Role = Role::Viewer;
    }

    pub struct Admin;
    impl AtLeast for Admin {
        const ROLE: Role = Role::Admin;
    }
}

/// The UUID path parameter `name` of the matched route, if the route has one by that name.
async fn path_uuid(
    parts: &mut Parts,
    state: &Arc<AppState>,
    name: &'static str,
) -> Result<Option<Uuid>, ApiError> {
    // A route without parameters has none to extract: that is not an error here.
    let Ok(params) = RawPathParams::from_request_parts(parts, state).await else {
        return Ok(None);
    };
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| {
            value
                .parse()
                .map_err(|_| bad(name, format!("{value:?} is not a UUID")))
        })
        .transpose()
}

/// `?project_id=` of a read that a signed-in user or an organization key makes.
#[derive(serde::Deserialize)]
struct ProjectChoice {
    project_id: Option<Uuid>,
}

/// A project the caller may act on as `N` needs, checked before the handler runs: the
/// `{project}` of the path; on routes without one (the read API), a project key's own project
/// or the `?project_id=` a user or an organization key names.
pub struct ProjectAccess<N> {
    pub id: Uuid,
    pub caller: Caller,
    need: PhantomData<N>,
}

impl<N: Needs> FromRequestParts<Arc<AppState>> for ProjectAccess<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let named = path_uuid(parts, state, "project").await?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let id = match (named, &caller) {
            (Some(project), _) => project,
            (None, Caller::Key(key)) => key.project_id,
            (None, _) => {
                let Query(choice) = Query::<ProjectChoice>::try_from_uri(&parts.uri)
                    .map_err(|e| bad("project_id", e.body_text()))?;
                choice.project_id.ok_or_else(|| {
                    bad(
                        "project_id",
                        "required: the project to read (a project key implies it)",
                    )
                })?
            }
        };
        caller.require(state, id, N::NEED).await?;
        Ok(ProjectAccess {
            id,
            caller,
            need: PhantomData,
        })
    }
}

/// The project of the project API key that calls a Langfuse route, once it may do what `N`
/// needs: Langfuse's routes act on one project and name it by the key alone.
pub struct KeyProject<N> {
    pub id: Uuid,
    /// The key's public half, naming who acted (`key:<public key>`).
    pub public_key: String,
    need: PhantomData<N>,
}

impl<N: Needs> FromRequestParts<Arc<AppState>> for KeyProject<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Caller::Key(key) = &caller else {
            return Err(ApiError::bad_request(
                "project_key_required",
                "Langfuse routes act on one project: authenticate with that project's API key (Basic public:secret)",
            ));
        };
        let (id, public_key) = (key.project_id, key.public_key.clone());
        caller.require(state, id, N::NEED).await?;
        Ok(KeyProject {
            id,
            public_key,
            need: PhantomData,
        })
    }
}

/// The `{organization}` of the path, once the caller holds at least role `R` in it.
pub struct OrganizationAccess<R> {
    pub id: Uuid,
    pub caller: Caller,
    role: PhantomData<R>,
}

impl<R: AtLeast> FromRequestParts<Arc<AppState>> for OrganizationAccess<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let id = path_uuid(parts, state, "organization")
            .await?
            .ok_or_else(|| ApiError::internal("OrganizationAccess on a route without {organization}"))?;
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_role(state, id, R::ROLE).await?;
        Ok(OrganizationAccess {
            id,
            caller,
            role: PhantomData,
        })
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    /// Authenticates the caller, and names it to the audit log when the route is audited.
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set_caller(&caller);
        }
        Ok(caller)
    }
}

async fn authenticate(parts: &mut Parts, state: &Arc<AppState>) -> Result<Caller, ApiError> {
    let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("missing Authorization header: send `Bearer <session token>` or an API key as Basic or Bearer `public:secret`")
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
                .map_err(|_| ApiError::unauthorized("the Basic credentials are not base64"))?;
            String::from_utf8(decoded)
                .map_err(|_| ApiError::unauthorized("the Basic credentials are not UTF-8"))?
        }
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => value.trim().to_owned(),
        _ => return Err(ApiError::unauthorized("use the Basic or Bearer scheme")),
    };
    let (public, secret) = pair
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("an API key is `public_key:secret_key`"))?;
    if public.starts_with(ORG_PUBLIC_PREFIX) {
        return verify_organization_key(&**client, public, secret)
            .await?
            .map(Caller::Organization)
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked organization key, or a wrong secret"));
    }
    let key = verify_key(&**client, public, secret)
        .await
        .map_err(ControlError::from)??;
    Ok(Caller::Key(key))
}
