//! Organizations and projects in PostgreSQL. A project owns every event, key, prompt, dataset,
//! evaluator and experiment; its `retention_days` bounds how long ClickHouse keeps its events.

use tokio_postgres::{GenericClient, Row};
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

impl Project {
    /// What [`Project::from_row`] reads, selected from `projects`.
    pub const COLUMNS: &'static str = "id, organization_id, name, retention_days";

    pub fn from_row(row: &Row) -> Self {
        Project {
            id: row.get("id"),
            organization_id: row.get("organization_id"),
            name: row.get("name"),
            retention_days: row.get("retention_days"),
        }
    }
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
            .get("id")),
        [row] => Ok(row.get("id")),
        _ => Err(ControlError::AmbiguousOrganization(name.to_owned())),
    }
}

/// A project's name: 1 to 200 characters (as the table's CHECK says).
fn check_name(name: &str) -> Result<(), ControlError> {
    if (1..=200).contains(&name.chars().count()) {
        Ok(())
    } else {
        Err(ControlError::Invalid {
            field: "name",
            message: "must be 1 to 200 characters".into(),
        })
    }
}

/// Days of retention: positive (no value keeps data forever).
fn check_retention(retention_days: Option<i32>) -> Result<(), ControlError> {
    match retention_days {
        Some(days) if days <= 0 => Err(ControlError::Invalid {
            field: "retention_days",
            message: "must be a positive number of days, or null to keep data forever".into(),
        }),
        _ => Ok(()),
    }
}

/// Another project of the organization has that name.
fn name_taken(name: &str, error: tokio_postgres::Error) -> ControlError {
    match error.code() {
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => ControlError::ProjectExists {
            name: name.to_owned(),
        },
        _ => ControlError::from(error),
    }
}

pub async fn create_project(
    client: &impl GenericClient,
    organization_id: Uuid,
    name: &str,
    retention_days: Option<i32>,
) -> Result<Project, ControlError> {
    check_name(name)?;
    check_retention(retention_days)?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO projects (organization_id, name, retention_days) VALUES ($1, $2, $3) RETURNING {}",
                Project::COLUMNS
            ),
            &[&organization_id, &name, &retention_days],
        )
        .await
        .map_err(|error| name_taken(name, error))?;
    Ok(Project::from_row(&row))
}

pub async fn list_projects(client: &impl GenericClient) -> Result<Vec<Project>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM projects WHERE archived_at IS NULL ORDER BY created_at, name",
                Project::COLUMNS
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(Project::from_row).collect())
}

/// The projects of one organization, archived ones included when asked.
pub async fn organization_projects(
    client: &impl GenericClient,
    organization_id: Uuid,
) -> Result<Vec<Project>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM projects WHERE organization_id = $1 AND archived_at IS NULL ORDER BY name",
                Project::COLUMNS
            ),
            &[&organization_id],
        )
        .await?;
    Ok(rows.iter().map(Project::from_row).collect())
}

/// A project that is not archived.
pub async fn get_project(client: &impl GenericClient, project_id: Uuid) -> Result<Project, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM projects WHERE id = $1 AND archived_at IS NULL",
                Project::COLUMNS
            ),
            &[&project_id],
        )
        .await?
        .map(|row| Project::from_row(&row))
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
        .map(|row| row.get("organization_id"))
        .ok_or(ControlError::NoSuchProject(project_id))
}

/// Renames a project or changes its retention (`Some(None)` keeps data forever).
pub async fn update_project(
    client: &impl GenericClient,
    project_id: Uuid,
    name: Option<&str>,
    retention_days: Option<Option<i32>>,
) -> Result<(), ControlError> {
    if let Some(name) = name {
        check_name(name)?;
    }
    check_retention(retention_days.flatten())?;
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
        .await
        .map_err(|error| name_taken(name.unwrap_or_default(), error))?;
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
            &format!(
                "SELECT {}, (SELECT name FROM organizations o WHERE o.id = p.organization_id) AS organization_name
                 FROM projects p WHERE p.id = $1",
                Project::COLUMNS
            ),
            &[&project_id],
        )
        .await?
        .map(|row| (Project::from_row(&row), row.get("organization_name")))
        .ok_or(ControlError::NoSuchProject(project_id))
}
