//! The Scaleway routes (§5): connect, list projects, disconnect; and their OpenAPI description.

use actix_web::{web, HttpRequest, HttpResponse};
use connector_core::error::ErrorBody;
use connector_core::kit::{
    display_name_or, BodyRefusals, CallerHeader, PickParams, PickRefusals, UpstreamRefusals,
};
use connector_core::secret::StoredDocument;
use connector_core::{Actor, ApiError, Caller, ConnectSpec, ConnectionStatus, DisconnectResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::input::{ConnectRequest, DisconnectRequest};
use crate::{flow, selection, ScalewayConnector, StoredSecret};

/// Answer of a successful connect.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub message: String,
    /// The connected organization (the connection's `accountId`).
    pub organization_id: String,
    /// The project chosen for the connection.
    pub project_id: String,
    /// How many projects the organization has.
    pub projects_count: usize,
    pub connection_id: uuid::Uuid,
}

/// One project of the connected organization.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    pub project_id: String,
    pub project_name: String,
    pub organization_id: String,
    pub description: String,
    /// Whether this is the project the connection uses: the root (§9.2).
    pub is_default: bool,
    /// The project's name (what Aurora's frontend reads; same as `projectName`).
    pub name: String,
    /// Whether internal services may act on this project (§9.2: a project never saved is).
    pub enabled: bool,
    /// Whether this is the root project (the connection's own).
    pub is_root_project: bool,
}

/// Answer of the project list: every project of the organization, every page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectsResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub projects: Vec<ProjectView>,
}

connector_core::provider_routes! {
    ScalewayConnector;
    post CONNECT_PATH = "/scaleway_api/scaleway/connect" => connect,
    post DISCONNECT_PATH = "/scaleway_api/scaleway/disconnect" => disconnect,
}

/// The project list (GET) and the selection save (POST, §9.6 S2–S3).
pub const PROJECTS_PATH: &str = "/scaleway_api/scaleway/projects";
/// The root project (GET, POST: §9.6 S4).
pub const ROOT_PROJECT_PATH: &str = "/scaleway_api/scaleway/root-project";

/// Mount every Scaleway route: the table's, and the two paths that take two methods.
pub(crate) fn mount(connector: web::Data<ScalewayConnector>, cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(PROJECTS_PATH)
            .route(web::get().to(projects))
            .route(web::post().to(selection::save_projects)),
    )
    .service(
        web::resource(ROOT_PROJECT_PATH)
            .route(web::get().to(selection::root_project))
            .route(web::post().to(selection::set_root_project)),
    );
    configure(connector, cfg);
}

pub(crate) fn needs_reconnect() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        connector_core::error::ErrorCode::NeedsReconnect,
        "the stored Scaleway credentials are missing; connect the account again",
    )
}

connector_core::connect_route! {
    /// Connect a Scaleway organization with an API key.
    connect: ScalewayConnector, ConnectRequest => ConnectResponse,
    "/scaleway_api/scaleway/connect", "scaleway",
    ok "The key works; the connection is stored (or updated for an organization already connected)",
    bad "A malformed field, an organizationId that is not the key's, a projectId outside the organization, or an organization without projects (`invalid_request`)",
    rejected "Scaleway refused the key, or does not know the access key (`credentials_rejected`)";
    |connector, caller, input| {
        let resolved = flow::resolve(&connector.client, &input).await?;
        let org = resolved.organization_id.clone();
        let project = &resolved.project;
        let mut metadata = serde_json::json!({
            "projectId": project.id,
            "projectName": project.name,
            "organizationId": org,
            "accessKey": input.access_key,
        });
        if let Some(at) = resolved.key.expires_at {
            metadata["keyExpiresAt"] = serde_json::Value::String(at.to_rfc3339());
        }
        let secret = StoredSecret {
            access_key: input.access_key.clone(),
            secret_key: input.secret_key.clone(),
        }
        .encode()?;
        let display_name = display_name_or(&project.name, &org);
        let spec = ConnectSpec {
            user: caller.user.clone(),
            provider: connector.provider.clone(),
            account_id: org.clone(),
            display_name: Some(display_name),
            read_only: false,
            metadata,
            expires_at: resolved.key.expires_at,
            status: ConnectionStatus::Active,
            secret,
        };
        let (record, created) = connector.platform.connect(spec, Actor::User).await?;
        let message = format!(
            "Scaleway organization {org} {} with project {}",
            if created { "connected" } else { "reconnected" },
            if project.name.is_empty() {
                &project.id
            } else {
                &project.name
            }
        );
        Ok(HttpResponse::Ok().json(ConnectResponse {
            status: "success",
            message,
            organization_id: org,
            project_id: project.id.clone(),
            projects_count: resolved.projects_count,
            connection_id: record.id.0,
        }))
    }
}

/// List every project of the caller's Scaleway organization.
#[utoipa::path(
    get,
    path = "/scaleway_api/scaleway/projects",
    tag = "scaleway",
    params(PickParams<ScalewayConnector>),
    responses(
        (status = 200, description = "Every project, every page of Scaleway's list", body = ProjectsResponse),
        (status = 409, description = "The stored credentials are missing (`needs_reconnect`)", body = ErrorBody),
        (status = 422, description = "Scaleway refused the stored key (`credentials_rejected`)", body = ErrorBody),
        (status = 429, description = "Scaleway throttled the gateway", body = ErrorBody),
        (status = 502, description = "Scaleway unavailable", body = ErrorBody),
        PickRefusals<ScalewayConnector>,
    )
)]
pub(crate) async fn projects(
    connector: web::Data<ScalewayConnector>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (conn, list) = connector.with_projects(&caller, &req).await?;
    let selection = selection::selection_of(&conn);
    let projects = list
        .into_iter()
        .map(|p| {
            let root = selection.root() == Some(p.id.as_str());
            ProjectView {
                is_default: root,
                is_root_project: root,
                enabled: selection.is_enabled(&p.id),
                name: p.name.clone(),
                project_id: p.id,
                project_name: p.name,
                organization_id: p.organization_id,
                description: p.description,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ProjectsResponse {
        status: "success",
        projects,
    }))
}

connector_core::disconnect_route!(
    /// Remove the caller's Scaleway connections (or one of them). The API key stays at Scaleway.
    disconnect: ScalewayConnector, DisconnectRequest, "/scaleway_api/scaleway/disconnect", "scaleway", "Scaleway",
    "Optional; without a connection id every Scaleway connection of the caller is removed",
    "Malformed body or connectionId, or different ids in body and query",
);

/// The OpenAPI description of the Scaleway routes.
#[derive(OpenApi)]
#[openapi(
    paths(connect, projects, selection::save_projects, selection::root_project, selection::set_root_project, disconnect),
    components(schemas(ConnectRequest, ConnectResponse, ProjectsResponse, ProjectView, selection::ProjectChoice, selection::SaveProjectsRequest, selection::RootProjectRequest, selection::SelectionSaved, selection::RootProjectView, DisconnectRequest, DisconnectResponse, ErrorBody)),
    tags((name = "scaleway", description = "Scaleway organizations connected with an IAM API key"))
)]
pub struct ScalewayApi;
