//! Organizations and projects in PostgreSQL. A project owns every event, key, prompt, dataset,
//! evaluator and experiment; its `retention_days` bounds how long ClickHouse keeps its events.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::admin::AdminError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub retention_days: Option<i32>,
}

/// Finds the organization named `name`, creating it when there is none.
pub async fn ensure_organization(client: &impl GenericClient, name: &str) -> Result<Uuid, AdminError> {
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
        _ => Err(AdminError::AmbiguousOrganization(name.to_owned())),
    }
}

pub async fn create_project(
    client: &impl GenericClient,
    organization_id: Uuid,
    name: &str,
    retention_days: Option<i32>,
) -> Result<Project, AdminError> {
    let row = client
        .query_one(
            "INSERT INTO projects (organization_id, name, retention_days) VALUES ($1, $2, $3) RETURNING id",
            &[&organization_id, &name, &retention_days],
        )
        .await
        .map_err(|error| match error.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => AdminError::ProjectExists {
                name: name.to_owned(),
            },
            _ => AdminError::from(error),
        })?;
    Ok(Project {
        id: row.get(0),
        organization_id,
        name: name.to_owned(),
        retention_days,
    })
}

pub async fn list_projects(client: &impl GenericClient) -> Result<Vec<Project>, AdminError> {
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
