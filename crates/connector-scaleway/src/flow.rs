//! The provider side of a connect, without storage: prove the key, find its organization, list every
//! project, choose one. Kept apart from the route so it can be tested against a stubbed API.

use chrono::{DateTime, Utc};
use connector_core::{ApiError, ConnectorError};

use crate::client::{ApiKey, Project, ScalewayClient};
use crate::input::ConnectInput;

/// What the provider told us about a key that works.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub key: ApiKey,
    pub organization_id: String,
    pub project: Project,
    pub projects_count: usize,
}

/// A key whose expiry has passed is refused before anything is stored.
pub fn check_not_expired(
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), ConnectorError> {
    match expires_at {
        Some(at) if at <= now => Err(ConnectorError::CredentialsRejected(format!(
            "this Scaleway API key expired at {}; create a new key and connect again",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))),
        _ => Ok(()),
    }
}

/// The project to use: the requested one (it must be in `projects`), else the key's default project
/// when it is in the list, else the first.
pub fn choose_project<'a>(
    projects: &'a [Project],
    requested: Option<&str>,
    key_default: Option<&str>,
    organization_id: &str,
) -> Result<&'a Project, ApiError> {
    let find = |id: &str| projects.iter().find(|p| p.id.eq_ignore_ascii_case(id));
    if let Some(id) = requested {
        return find(id).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "projectId is not a project of organization {organization_id}"
            ))
        });
    }
    if let Some(p) = key_default.and_then(find) {
        return Ok(p);
    }
    projects.first().ok_or_else(|| {
        ApiError::invalid_request(format!(
            "organization {organization_id} has no project; create one in the Scaleway console first"
        ))
    })
}

/// Run the provider side of a connect.
pub async fn resolve(client: &ScalewayClient, input: &ConnectInput) -> Result<Resolved, ApiError> {
    let key = client
        .get_api_key(&input.secret_key, &input.access_key)
        .await?;
    check_not_expired(key.expires_at, Utc::now())?;
    let key_org = client
        .key_organization(&input.secret_key, &key)
        .await?
        .map(|o| o.to_ascii_lowercase());
    let organization_id = match (&input.organization_id, key_org) {
        (Some(given), Some(found)) if *given != found => {
            return Err(ApiError::invalid_request(
                "organizationId is not the organization of this API key",
            ))
        }
        (_, Some(found)) => found,
        (Some(given), None) => given.clone(),
        (None, None) => return Err(ApiError::invalid_request(
            "Scaleway does not say which organization this API key belongs to; give organizationId",
        )),
    };
    let projects = client
        .list_projects(&input.secret_key, &organization_id)
        .await?;
    let project = choose_project(
        &projects,
        input.project_id.as_deref(),
        key.default_project_id.as_deref(),
        &organization_id,
    )?
    .clone();
    Ok(Resolved {
        key,
        organization_id,
        project,
        projects_count: projects.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> Project {
        Project {
            id: id.into(),
            name: format!("name-{id}"),
            organization_id: "o".into(),
            description: String::new(),
            created_at: None,
        }
    }

    #[test]
    fn project_choice() {
        let ps = vec![p("a"), p("b"), p("c")];
        assert_eq!(choose_project(&ps, None, None, "o").unwrap().id, "a");
        assert_eq!(choose_project(&ps, None, Some("b"), "o").unwrap().id, "b");
        assert_eq!(choose_project(&ps, None, Some("zz"), "o").unwrap().id, "a");
        assert_eq!(
            choose_project(&ps, Some("C"), Some("b"), "o").unwrap().id,
            "c"
        );
        let e = choose_project(&ps, Some("zz"), Some("b"), "o").unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.message.contains("projectId"));
        let e = choose_project(&[], None, Some("b"), "o").unwrap_err();
        assert_eq!(e.code, "invalid_request");
    }

    #[test]
    fn expiry() {
        let now = Utc::now();
        assert!(check_not_expired(None, now).is_ok());
        assert!(check_not_expired(Some(now + chrono::Duration::hours(1)), now).is_ok());
        assert!(
            check_not_expired(Some(now - chrono::Duration::hours(1)), now)
                .unwrap_err()
                .is_refusal()
        );
    }
}
