//! People and organizations: users (passwords hashed with argon2id), sessions (random tokens of
//! which only the SHA-256 is stored, expiring, revocable), organizations, their members' roles,
//! and organization keys for automation.
//!
//! Roles, each including the ones below it: `viewer` reads project data; `member` also writes
//! it (prompts, datasets, experiments, evaluators); `admin` also manages projects, API keys and
//! members; `owner` also manages the organization and its owners.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::api_keys::hash_secret;
use crate::control::{ControlError, Precision, time};

/// A session token's prefix (so a leaked one is recognizable).
pub const SESSION_PREFIX: &str = "at-session-";
pub const ORG_PUBLIC_PREFIX: &str = "pk-org-";
pub const ORG_SECRET_PREFIX: &str = "sk-org-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Result<Role, ControlError> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(ControlError::Invalid {
                field: "role",
                message: format!("unknown role {other:?}; roles are owner, admin, member, viewer"),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    #[schema(required = true)]
    pub name: Option<String>,
}

impl User {
    /// What [`User::from_row`] reads, selected from `users u`.
    pub const COLUMNS: &'static str = "u.id, u.email, u.name";

    pub fn from_row(row: &Row) -> Self {
        User {
            id: row.get("id"),
            email: row.get("email"),
            name: row.get("name"),
        }
    }
}

/// argon2id with OWASP's second recommended setting (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The PHC string (`$argon2id$v=19$...`) of a password.
pub fn hash_password(password: &str) -> Result<String, ControlError> {
    if password.chars().count() < 12 {
        return Err(ControlError::Invalid {
            field: "password",
            message: "must be at least 12 characters".into(),
        });
    }
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| ControlError::Internal(e.to_string()))?;
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| ControlError::Internal(format!("hashing the password: {e}")))?
        .to_string())
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

fn check_email(email: &str) -> Result<(), ControlError> {
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && email.len() <= 320 => Ok(()),
        _ => Err(ControlError::Invalid {
            field: "email",
            message: format!("{email:?} is not an email address"),
        }),
    }
}

pub async fn create_user(
    client: &impl GenericClient,
    email: &str,
    name: Option<&str>,
    password: &str,
) -> Result<User, ControlError> {
    check_email(email)?;
    let hash = hash_password(password)?;
    let email = email.to_lowercase();
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO users AS u (email, name, password_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (email) DO NOTHING RETURNING {}",
                User::COLUMNS
            ),
            &[&email, &name, &hash],
        )
        .await?
        .ok_or_else(|| ControlError::Conflict(format!("a user with email {email:?} exists")))?;
    Ok(User::from_row(&row))
}

pub async fn find_user(client: &impl GenericClient, email: &str) -> Result<User, ControlError> {
    client
        .query_opt(
            &format!("SELECT {} FROM users u WHERE u.email = $1", User::COLUMNS),
            &[&email.to_lowercase()],
        )
        .await?
        .map(|row| User::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("user {email:?}")))
}

/// A signed-in session: the token is shown only here.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub token: String,
    pub user: User,
    pub expires_at: String,
}

/// Why a sign-in or a session was refused (one answer for a wrong email or password, so the
/// answer does not tell which emails have accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignInRefused {
    #[error("wrong email or password")]
    WrongCredentials,
    #[error("the session is unknown, expired or signed out; sign in again")]
    BadSession,
}

/// An enabled account as sign-in needs it: who, and their password's PHC string (none for an
/// account that never set one).
pub async fn credentials(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<(User, Option<String>)>, ControlError> {
    Ok(client
        .query_opt(
            &format!(
                "SELECT {}, u.password_hash FROM users u WHERE u.email = $1 AND u.disabled_at IS NULL",
                User::COLUMNS
            ),
            &[&email.to_lowercase()],
        )
        .await?
        .map(|row| (User::from_row(&row), row.get("password_hash"))))
}

/// The hash an unknown email's sign-in is checked against: it costs what a known one does, so
/// timing does not tell which emails have accounts. A constant (of [`hasher`]'s parameters,
/// which a test checks), so that the first unknown email costs no extra hash.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$+YqGTGsrUBlzEbufbkKf3g$qXslNkgUc4AW2Z/XJJgBz9PuKpHl9CqNsTFMVS2jJLk";

/// Whether `password` is the one `phc` hashes; without a hash (no such account), the password
/// is checked against [`DUMMY_HASH`] all the same and refused. One argon2id verification
/// (19 MiB, tens of milliseconds of CPU): run it off the async workers, holding no database
/// connection.
pub fn check_password(password: &str, phc: Option<&str>) -> bool {
    password_matches(password, phc.unwrap_or(DUMMY_HASH)) && phc.is_some()
}

/// Opens a session of `user` valid for `ttl` (once their password was checked).
pub async fn open_session(
    client: &impl GenericClient,
    user: User,
    ttl: Duration,
) -> Result<Session, ControlError> {
    let token = format!("{SESSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    let seconds = ttl.as_secs() as f64;
    let session = client
        .query_one(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
             RETURNING expires_at",
            &[&hash_secret(&token).as_slice(), &user.id, &seconds],
        )
        .await?;
    Ok(Session {
        token,
        user,
        expires_at: time(&session, "expires_at", Precision::Seconds),
    })
}

/// The user a session token belongs to, while it is valid.
pub async fn session_user(
    client: &impl GenericClient,
    token: &str,
) -> Result<Result<User, SignInRefused>, ControlError> {
    if !token.starts_with(SESSION_PREFIX) {
        return Ok(Err(SignInRefused::BadSession));
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM user_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL",
                User::COLUMNS
            ),
            &[&hash_secret(token).as_slice()],
        )
        .await?;
    Ok(row
        .map(|row| User::from_row(&row))
        .ok_or(SignInRefused::BadSession))
}

/// Ends one session.
pub async fn sign_out(client: &impl GenericClient, token: &str) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE user_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE token_hash = $1",
            &[&hash_secret(token).as_slice()],
        )
        .await?;
    Ok(())
}

/// Ends every session of a user (after a password change, or to lock someone out).
pub async fn revoke_sessions(client: &impl GenericClient, user_id: Uuid) -> Result<u64, ControlError> {
    Ok(client
        .execute(
            "UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user_id],
        )
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
}

impl Organization {
    /// What [`Organization::from_row`] reads, selected from `organizations o`.
    pub const COLUMNS: &'static str = "o.id, o.name";

    pub fn from_row(row: &Row) -> Self {
        Organization {
            id: row.get("id"),
            name: row.get("name"),
        }
    }
}

pub async fn create_organization(
    client: &impl GenericClient,
    name: &str,
) -> Result<Organization, ControlError> {
    if name.is_empty() || name.len() > 200 {
        return Err(ControlError::Invalid {
            field: "name",
            message: "must be 1 to 200 characters".into(),
        });
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO organizations AS o (name) VALUES ($1) RETURNING {}",
                Organization::COLUMNS
            ),
            &[&name],
        )
        .await?;
    Ok(Organization::from_row(&row))
}

/// Adds `user` to `organization` with `role`; a conflict when they are a member already (a
/// member's role changes only through [`change_member`], which keeps an owner).
pub async fn add_member(
    client: &impl GenericClient,
    organization: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), ControlError> {
    let added = client
        .execute(
            "INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (organization_id, user_id) DO NOTHING",
            &[&organization, &user, &role.as_str()],
        )
        .await?;
    if added == 0 {
        return Err(ControlError::Conflict(format!(
            "user {user} is a member already; change their role instead"
        )));
    }
    Ok(())
}

/// Who changes an organization's members, and so what they may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user: their role is read in the change's own transaction, so a role they
    /// lost a moment ago no longer counts.
    User(Uuid),
    /// A caller whose role is fixed: an organization key acts as an admin; the operator's CLI
    /// as an owner.
    Role(Role),
}

/// What happens to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    SetRole(Role),
    Remove,
}

/// The 403 of a caller whose role is below `needed`.
pub fn role_needed(needed: Role, role: Role) -> ControlError {
    ControlError::Forbidden(format!(
        "this needs the {} role in the organization; you are a {}",
        needed.as_str(),
        role.as_str()
    ))
}

/// Changes a member's role or removes them, as `actor`: admins manage members, but only an
/// owner may make an owner or change or remove one; and an organization never loses its last
/// owner. The organization's row is locked (`FOR NO KEY UPDATE`) and its members' rows are
/// read `FOR UPDATE` in the change's transaction, so concurrent changes run one after the other
/// and each sees the owners the previous one left. Returns the member's role before.
pub async fn change_member(
    client: &mut tokio_postgres::Client,
    organization: Uuid,
    user: Uuid,
    change: MemberChange,
    actor: Actor,
) -> Result<Role, ControlError> {
    let tx = client.transaction().await?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
            &[&organization],
        )
        .await?;
    if exists.is_none() {
        return Err(ControlError::NotFound(format!("organization {organization}")));
    }
    let rows = tx
        .query(
            "SELECT user_id, role FROM organization_members WHERE organization_id = $1 FOR UPDATE",
            &[&organization],
        )
        .await?;
    let mut roles = Vec::with_capacity(rows.len());
    for row in &rows {
        roles.push((row.get::<_, Uuid>("user_id"), Role::parse(row.get("role"))?));
    }
    let role_of = |who: Uuid| roles.iter().find(|(id, _)| *id == who).map(|(_, role)| *role);
    let acting = match actor {
        Actor::Role(role) => role,
        Actor::User(id) => {
            role_of(id).ok_or_else(|| ControlError::NotFound(format!("organization {organization}")))?
        }
    };
    let current = role_of(user);
    let needed = if change == MemberChange::SetRole(Role::Owner) || current == Some(Role::Owner) {
        Role::Owner
    } else {
        Role::Admin
    };
    if acting < needed {
        return Err(role_needed(needed, acting));
    }
    let Some(current) = current else {
        return Err(ControlError::NotFound(format!("member {user}")));
    };
    let stays_owner = change == MemberChange::SetRole(Role::Owner);
    let other_owners = roles
        .iter()
        .filter(|(id, role)| *id != user && *role == Role::Owner)
        .count();
    if current == Role::Owner && !stays_owner && other_owners == 0 {
        return Err(ControlError::Conflict(
            "an organization keeps at least one owner: make another member an owner first".into(),
        ));
    }
    match change {
        MemberChange::SetRole(role) => {
            tx.execute(
                "UPDATE organization_members SET role = $3 WHERE organization_id = $1 AND user_id = $2",
                &[&organization, &user, &role.as_str()],
            )
            .await?;
        }
        MemberChange::Remove => {
            tx.execute(
                "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2",
                &[&organization, &user],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(current)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user: User,
    pub role: Role,
}

pub async fn members(client: &impl GenericClient, organization: Uuid) -> Result<Vec<Member>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, m.role FROM organization_members m JOIN users u ON u.id = m.user_id
                 WHERE m.organization_id = $1 ORDER BY u.email",
                User::COLUMNS
            ),
            &[&organization],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Member {
                user: User::from_row(row),
                role: Role::parse(row.get("role"))?,
            })
        })
        .collect()
}

/// The member of `organization` whose account has `email`, if there is one: nothing about an
/// email that has an account but is no member.
pub async fn member_by_email(
    client: &impl GenericClient,
    organization: Uuid,
    email: &str,
) -> Result<Option<Member>, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {}, m.role FROM organization_members m JOIN users u ON u.id = m.user_id
                 WHERE m.organization_id = $1 AND u.email = $2",
                User::COLUMNS
            ),
            &[&organization, &email.to_lowercase()],
        )
        .await?
        .map(|row| {
            Ok(Member {
                user: User::from_row(&row),
                role: Role::parse(row.get("role"))?,
            })
        })
        .transpose()
}

/// How long an invitation waits for its answer.
pub const INVITATION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// A pending invitation, as its organization's admins see it: the email and the role it offers,
/// nothing about whether the email has an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: String,
    pub expires_at: String,
}

impl Invitation {
    /// What [`Invitation::from_row`] reads, selected from `organization_invitations i`.
    pub const COLUMNS: &'static str = "i.id, i.organization_id, i.email, i.role, i.created_at, i.expires_at";

    fn from_row(row: &Row) -> Result<Self, ControlError> {
        Ok(Invitation {
            id: row.get("id"),
            organization_id: row.get("organization_id"),
            email: row.get("email"),
            role: Role::parse(row.get("role"))?,
            created_at: time(row, "created_at", Precision::Millis),
            expires_at: time(row, "expires_at", Precision::Millis),
        })
    }
}

/// Invites `email` into `organization` with `role`, as `actor` (admins invite; inviting an
/// owner, or changing an owner's pending invitation, takes an owner). Inviting the same email
/// again replaces the role and the expiry. Whether the email has an account changes nothing
/// here, nor in the answer.
pub async fn invite(
    client: &mut tokio_postgres::Client,
    organization: Uuid,
    email: &str,
    role: Role,
    actor: Actor,
) -> Result<Invitation, ControlError> {
    check_email(email)?;
    let email = email.to_lowercase();
    let tx = client.transaction().await?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
            &[&organization],
        )
        .await?;
    if exists.is_none() {
        return Err(ControlError::NotFound(format!("organization {organization}")));
    }
    let (acting, inviter) = match actor {
        Actor::Role(role) => (role, None),
        Actor::User(id) => (
            role_of(&tx, organization, id)
                .await?
                .ok_or_else(|| ControlError::NotFound(format!("organization {organization}")))?,
            Some(id),
        ),
    };
    let pending = tx
        .query_opt(
            "SELECT role FROM organization_invitations WHERE organization_id = $1 AND email = $2",
            &[&organization, &email],
        )
        .await?
        .map(|row| Role::parse(row.get("role")))
        .transpose()?;
    let needed = if role == Role::Owner || pending == Some(Role::Owner) {
        Role::Owner
    } else {
        Role::Admin
    };
    if acting < needed {
        return Err(role_needed(needed, acting));
    }
    let seconds = INVITATION_TTL.as_secs() as f64;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO organization_invitations AS i (organization_id, email, role, invited_by, expires_at)
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                 ON CONFLICT (organization_id, email) DO UPDATE
                 SET role = EXCLUDED.role, invited_by = EXCLUDED.invited_by,
                     created_at = now(), expires_at = EXCLUDED.expires_at
                 RETURNING {}",
                Invitation::COLUMNS
            ),
            &[&organization, &email, &role.as_str(), &inviter, &seconds],
        )
        .await?;
    let invitation = Invitation::from_row(&row)?;
    tx.commit().await?;
    Ok(invitation)
}

/// `organization`'s pending invitations (expired ones left out), oldest first.
pub async fn invitations(
    client: &impl GenericClient,
    organization: Uuid,
) -> Result<Vec<Invitation>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM organization_invitations i
                 WHERE i.organization_id = $1 AND i.expires_at > now() ORDER BY i.created_at, i.email",
                Invitation::COLUMNS
            ),
            &[&organization],
        )
        .await?;
    rows.iter().map(Invitation::from_row).collect()
}

/// Withdraws a pending invitation of `organization`.
pub async fn cancel_invitation(
    client: &impl GenericClient,
    organization: Uuid,
    invitation: Uuid,
) -> Result<(), ControlError> {
    let deleted = client
        .execute(
            "DELETE FROM organization_invitations WHERE organization_id = $1 AND id = $2",
            &[&organization, &invitation],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("invitation {invitation}")));
    }
    Ok(())
}

/// An invitation as the invited person sees it: which organization, what role, from whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReceivedInvitation {
    pub id: Uuid,
    pub organization: Organization,
    pub role: Role,
    /// The inviter's email, when they were a signed-in user who still has an account.
    #[schema(required = true)]
    pub invited_by: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

/// The pending invitations addressed to `user`'s email, newest first.
pub async fn received_invitations(
    client: &impl GenericClient,
    user: &User,
) -> Result<Vec<ReceivedInvitation>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT i.id AS invitation_id, i.role, i.created_at, i.expires_at, {}, inviter.email AS invited_by
                 FROM organization_invitations i
                 JOIN organizations o ON o.id = i.organization_id
                 LEFT JOIN users inviter ON inviter.id = i.invited_by
                 WHERE i.email = $1 AND i.expires_at > now()
                 ORDER BY i.created_at DESC",
                Organization::COLUMNS
            ),
            &[&user.email.to_lowercase()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ReceivedInvitation {
                id: row.get("invitation_id"),
                organization: Organization::from_row(row),
                role: Role::parse(row.get("role"))?,
                invited_by: row.get("invited_by"),
                created_at: time(row, "created_at", Precision::Millis),
                expires_at: time(row, "expires_at", Precision::Millis),
            })
        })
        .collect()
}

/// `user` answers an invitation addressed to their email: accepting makes them a member with
/// its role (a member already keeps the role they have), declining only deletes it. Either way
/// the invitation is gone; one that is not theirs, or expired, is not found.
pub async fn answer_invitation(
    client: &mut tokio_postgres::Client,
    user: &User,
    invitation: Uuid,
    accept: bool,
) -> Result<(Organization, Role), ControlError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "DELETE FROM organization_invitations
             WHERE id = $1 AND email = $2 AND expires_at > now()
             RETURNING organization_id, role",
            &[&invitation, &user.email.to_lowercase()],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("invitation {invitation}")))?;
    let organization_id: Uuid = row.get("organization_id");
    let mut role = Role::parse(row.get("role"))?;
    if accept {
        let added = tx
            .execute(
                "INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, $3)
                 ON CONFLICT (organization_id, user_id) DO NOTHING",
                &[&organization_id, &user.id, &role.as_str()],
            )
            .await?;
        if added == 0 {
            role = role_of(&tx, organization_id, user.id)
                .await?
                .ok_or_else(|| ControlError::Internal("a member without a role".into()))?;
        }
    }
    let organization = tx
        .query_one(
            &format!(
                "SELECT {} FROM organizations o WHERE o.id = $1",
                Organization::COLUMNS
            ),
            &[&organization_id],
        )
        .await?;
    tx.commit().await?;
    Ok((Organization::from_row(&organization), role))
}

/// The user's role in each of their organizations.
pub async fn memberships(
    client: &impl GenericClient,
    user: Uuid,
) -> Result<Vec<(Organization, Role)>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, m.role FROM organization_members m JOIN organizations o ON o.id = m.organization_id
                 WHERE m.user_id = $1 ORDER BY o.name",
                Organization::COLUMNS
            ),
            &[&user],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((Organization::from_row(row), Role::parse(row.get("role"))?)))
        .collect()
}

/// The first owner of a new install: their organization, their account, their role.
pub async fn bootstrap_owner(
    client: &mut tokio_postgres::Client,
    organization: &str,
    email: &str,
    password: &str,
) -> Result<(Organization, User), ControlError> {
    let tx = client.transaction().await?;
    let existing = tx
        .query_opt(
            &format!(
                "SELECT {} FROM organizations o WHERE o.name = $1",
                Organization::COLUMNS
            ),
            &[&organization],
        )
        .await?;
    let organization = match existing {
        Some(row) => Organization::from_row(&row),
        None => create_organization(&tx, organization).await?,
    };
    let user = create_user(&tx, email, None, password).await?;
    add_member(&tx, organization.id, user.id, Role::Owner).await?;
    tx.commit().await?;
    Ok((organization, user))
}

/// A new organization key; the secret is shown only here.
#[derive(Debug, Clone, Serialize)]
pub struct NewOrganizationKey {
    pub organization_id: Uuid,
    pub public_key: String,
    pub secret_key: String,
}

pub async fn create_organization_key(
    client: &impl GenericClient,
    organization: Uuid,
    note: Option<&str>,
) -> Result<NewOrganizationKey, ControlError> {
    let public_key = format!("{ORG_PUBLIC_PREFIX}{}", hex::encode(random_bytes::<16>()));
    let secret_key = format!(
        "{ORG_SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let hint = format!("{}…", &secret_key[..ORG_SECRET_PREFIX.len() + 4]);
    client
        .execute(
            "INSERT INTO organization_keys (organization_id, public_key, secret_hash, secret_hint, note)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &organization,
                &public_key,
                &hash_secret(&secret_key).as_slice(),
                &hint,
                &note,
            ],
        )
        .await?;
    Ok(NewOrganizationKey {
        organization_id: organization,
        public_key,
        secret_key,
    })
}

/// The organization of a valid organization key pair.
pub async fn verify_organization_key(
    client: &impl GenericClient,
    public_key: &str,
    secret_key: &str,
) -> Result<Option<Uuid>, ControlError> {
    let row = client
        .query_opt(
            "SELECT organization_id, secret_hash FROM organization_keys WHERE public_key = $1 AND revoked_at IS NULL",
            &[&public_key],
        )
        .await?;
    Ok(row.and_then(|row| {
        let stored: &[u8] = row.get("secret_hash");
        bool::from(stored.ct_eq(&hash_secret(secret_key))).then(|| row.get("organization_id"))
    }))
}

/// `user`'s role in `organization`, if a member.
pub async fn role_of(
    client: &impl GenericClient,
    organization: Uuid,
    user: Uuid,
) -> Result<Option<Role>, ControlError> {
    client
        .query_opt(
            "SELECT role FROM organization_members WHERE organization_id = $1 AND user_id = $2",
            &[&organization, &user],
        )
        .await?
        .map(|row| Role::parse(row.get("role")))
        .transpose()
}

/// `user`'s role in the organization that owns `project`: `None` when the project does not
/// exist or the user is no member (both are "no such project" to them).
pub async fn role_in_project(
    client: &impl GenericClient,
    project: Uuid,
    user: Uuid,
) -> Result<Option<Role>, ControlError> {
    client
        .query_opt(
            "SELECT m.role FROM projects p
             JOIN organization_members m ON m.organization_id = p.organization_id AND m.user_id = $2
             WHERE p.id = $1",
            &[&project, &user],
        )
        .await?
        .map(|row| Role::parse(row.get("role")))
        .transpose()
}

/// Creates an organization with `owner` as its first owner, in one transaction.
pub async fn found_organization(
    client: &mut tokio_postgres::Client,
    name: &str,
    owner: Uuid,
) -> Result<Organization, ControlError> {
    let tx = client.transaction().await?;
    let organization = create_organization(&tx, name).await?;
    add_member(&tx, organization.id, owner, Role::Owner).await?;
    tx.commit().await?;
    Ok(organization)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(password_matches("correct horse battery", &phc));
        assert!(!password_matches("wrong horse battery", &phc));
        assert!(hash_password("short").is_err());
        assert!(check_password("correct horse battery", Some(&phc)));
        assert!(!check_password("correct horse battery", None));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash_password("correct horse battery").unwrap();
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).unwrap().to_owned();
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!check_password("no account has this password, ever", None));
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member && Role::Member > Role::Viewer);
        assert_eq!(Role::parse("admin").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
    }
}
