//! What an API key may do. Stored in PostgreSQL as text (`api_keys.scopes`, checked there too),
//! carried in key checks between the edge and the ETL, and named on the command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send events (through the edge).
    Ingest,
    /// Export tables as Arrow or Parquet.
    Export,
    /// Run read-only SQL.
    Query,
    /// Read traces, sessions, observations and scores, and the project's prompts, datasets,
    /// experiments and evaluators.
    Read,
    /// Create and change the project's prompts, datasets, experiments, evaluators and prices.
    Manage,
    /// Everything the other scopes allow.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::Ingest,
        Scope::Export,
        Scope::Query,
        Scope::Read,
        Scope::Manage,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Export => "export",
            Scope::Query => "query",
            Scope::Read => "read",
            Scope::Manage => "manage",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key holding `scopes` may do what `self` allows (`manage` includes `read`).
    pub fn granted_by(self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|held| {
            *held == self || *held == Scope::Admin || (self == Scope::Read && *held == Scope::Manage)
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; scopes are ingest, export, query, read, manage, admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| UnknownScope(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_admin_grants_everything() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            assert_eq!(serde_json::to_string(&scope).unwrap(), format!("\"{scope}\""));
        }
        assert!("read-all".parse::<Scope>().is_err());
        assert!(Scope::Export.granted_by(&[Scope::Ingest, Scope::Export]));
        assert!(Scope::Query.granted_by(&[Scope::Admin]));
        assert!(!Scope::Query.granted_by(&[Scope::Ingest, Scope::Export]));
    }
}
