//! Organizations and projects in PostgreSQL. A project owns every event, key, prompt, dataset,
//! evaluator and experiment; its `retention_days` bounds how long ClickHouse keeps its events.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::control::ControlError;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    #[schema(required = true)]
    pub retention_days: Option<i32>,
}

/// Finds the organization named `name`, creating it when there is none.
pub async fn ensure_organization(client: &impl GenericClient, name: &str) -> Result<Uuid, ControlError> {
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
        _ => Err(ControlError::AmbiguousOrganization(name.to_owned())),
    }
}

pub async fn create_project(
    client: &impl GenericClient,
    organization_id: Uuid,
    name: &str,
    retention_days: Option<i32>,
) -> Result<Project, ControlError> {
    let row = client
        .query_one(
            "INSERT INTO projects (organization_id, name, retention_days) VALUES ($1, $2, $3) RETURNING id",
            &[&organization_id, &name, &retention_days],
        )
        .await
        .map_err(|error| match error.code() {
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => ControlError::ProjectExists {
                name: name.to_owned(),
            },
            _ => ControlError::from(error),
        })?;
    Ok(Project {
        id: row.get(0),
        organization_id,
        name: name.to_owned(),
        retention_days,
    })
}

pub async fn list_projects(client: &impl GenericClient) -> Result<Vec<Project>, ControlError> {
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

/// The projects of one organization, archived ones included when asked.
pub async fn organization_projects(
    client: &impl GenericClient,
    organization_id: Uuid,
) -> Result<Vec<Project>, ControlError> {
    let rows = client
        .query(
            "SELECT id, organization_id, name, retention_days FROM projects
             WHERE organization_id = $1 AND archived_at IS NULL ORDER BY name",
            &[&organization_id],
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

/// A project that is not archived.
pub async fn get_project(client: &impl GenericClient, project_id: Uuid) -> Result<Project, ControlError> {
    client
        .query_opt(
            "SELECT id, organization_id, name, retention_days FROM projects WHERE id = $1 AND archived_at IS NULL",
            &[&project_id],
        )
        .await?
        .map(|row| Project {
            id: row.get(0),
            organization_id: row.get(1),
            name: row.get(2),
            retention_days: row.get(3),
        })
        .ok_or(ControlError::NoSuchProject(project_id))
}

/// The organization a project belongs to.
pub async fn organization_of(client: &impl GenericClient, project_id: Uuid) -> Result<Uuid, ControlError> {
    client
        .query_opt(
            "SELECT organization_id FROM projects WHERE id = $1",
            &[&project_id],
        )
        .await?
        .map(|row| row.get(0))
        .ok_or(ControlError::NoSuchProject(project_id))
}

/// Renames a project or changes its retention (`Some(None)` keeps data forever).
pub async fn update_project(
    client: &impl GenericClient,
    project_id: Uuid,
    name: Option<&str>,
    retention_days: Option<Option<i32>>,
) -> Result<(), ControlError> {
    if let Some(Some(days)) = retention_days
        && days <= 0
    {
        return Err(ControlError::Invalid {
            field: "retention_days",
            message: "must be a positive number of days, or null to keep data forever".into(),
        });
    }
    let updated = client
        .execute(
            "UPDATE projects SET name = coalesce($2, name),
                retention_days = CASE WHEN $3 THEN $4 ELSE retention_days END
             WHERE id = $1",
            &[
                &project_id,
                &name,
                &retention_days.is_some(),
                &retention_days.flatten(),
            ],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NoSuchProject(project_id));
    }
    Ok(())
}

/// Archives a project: it accepts no more events; its data stays readable.
pub async fn archive_project(client: &impl GenericClient, project_id: Uuid) -> Result<(), ControlError> {
    let updated = client
        .execute(
            "UPDATE projects SET archived_at = coalesce(archived_at, now()) WHERE id = $1",
            &[&project_id],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NoSuchProject(project_id));
    }
    Ok(())
}

/// A project with its organization's name, archived or not (what Langfuse's `GET
/// /api/public/projects` shows a project key).
pub async fn project_with_organization(
    client: &impl GenericClient,
    project_id: Uuid,
) -> Result<(Project, String), ControlError> {
    client
        .query_opt(
            "SELECT p.id, p.organization_id, p.name, p.retention_days, o.name AS organization_name
             FROM projects p JOIN organizations o ON o.id = p.organization_id WHERE p.id = $1",
            &[&project_id],
        )
        .await?
        .map(|row| {
            let project = Project {
                id: row.get("id"),
                organization_id: row.get("organization_id"),
                name: row.get("name"),
                retention_days: row.get("retention_days"),
            };
            (project, row.get("organization_name"))
        })
        .ok_or(ControlError::NoSuchProject(project_id))
}
