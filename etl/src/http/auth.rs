//! Extractors that authenticate a caller: `ApiKey<S>` accepts a project API key
//! (`Authorization: Bearer public:secret`, or Basic) that holds scope `S` (or `admin`).

use std::marker::PhantomData;
use std::sync::Arc;

use agenttrace_schemas::Scope;
use agenttrace_schemas::credentials::parse_authorization;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use crate::admin::api_keys::{VerifiedKey, verify_key};
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
