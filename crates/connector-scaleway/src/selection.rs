//! Scaleway's project selection and root project (docs/http-api.md §9.2, §9.6 S2–S4): which projects
//! of the organization internal services may act on, and which one is the connection's own. The
//! root *is* the connection's project (`projectId`): setting it moves the connection.

use actix_web::{web, HttpRequest, HttpResponse};
use connector_core::error::ErrorBody;
use connector_core::kit::{BodyRefusals, PickParams, PickRefusals, UpstreamRefusals};
use connector_core::secret::StoredDocument;
use connector_core::selection::Selection;
use connector_core::{ApiError, Caller, ConnectionRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::client::Project;
use crate::{connection_project, ScalewayConnector, StoredSecret};

/// Refusal of a save without a usable body (upstream's sentence).
const NO_BODY: &str = "Invalid or missing JSON body";

/// One entry of a save: a project and whether internal services may act on it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectChoice {
    #[serde(alias = "project_id")]
    pub project_id: String,
    pub enabled: bool,
}

/// Body of `POST /scaleway_api/scaleway/projects`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SaveProjectsRequest {
    /// Must be a list.
    #[schema(value_type = Vec<ProjectChoice>)]
    pub projects: Value,
}

/// Body of `POST /scaleway_api/scaleway/root-project`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootProjectRequest {
    #[serde(default, alias = "project_id")]
    pub project_id: Option<String>,
}

/// Answer of a save or of a root change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectionSaved {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub message: &'static str,
}

/// Answer of `GET /scaleway_api/scaleway/root-project`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootProjectView {
    pub project_id: Option<String>,
    pub has_root_project: bool,
}

/// The refusals of a route that reads the organization's projects with the stored key.
/// (Never built: it only documents the answers.)
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum StoredKeyRefusals {
    #[response(
        status = 409,
        description = "The stored credentials are missing (`needs_reconnect`)"
    )]
    Missing(ErrorBody),
    #[response(
        status = 422,
        description = "Scaleway refused the stored key (`credentials_rejected`)"
    )]
    Refused(ErrorBody),
}

/// The connection's selection; its root defaults to the connect-time project.
pub(crate) fn selection_of(conn: &ConnectionRecord) -> Selection {
    Selection::from_metadata(&conn.metadata, connection_project(conn))
}

impl ScalewayConnector {
    /// The caller's connection (`?connectionId=`, else the primary one) and its organization's
    /// projects, listed live.
    pub(crate) async fn with_projects(
        &self,
        caller: &Caller,
        req: &HttpRequest,
    ) -> Result<(ConnectionRecord, Vec<Project>), ApiError> {
        let conn = self.pick_connection(&caller.user, req).await?;
        let secret = self
            .platform
            .load_secret(&conn)
            .await?
            .ok_or_else(crate::routes::needs_reconnect)?;
        let stored = StoredSecret::decode(&secret)?;
        let list = self
            .client
            .list_projects(&stored.secret_key, &conn.account_id)
            .await?;
        Ok((conn, list))
    }

    /// Write `selection` into the connection's metadata, with `extra` fields (the root's project).
    async fn store_selection(
        &self,
        conn: &ConnectionRecord,
        selection: &Selection,
        extra: &[(&str, &str)],
    ) -> Result<(), ApiError> {
        let mut metadata = conn.metadata.clone();
        selection.write_to(&mut metadata);
        if let Some(m) = metadata.as_object_mut() {
            for (k, v) in extra {
                m.insert((*k).into(), Value::String((*v).into()));
            }
        }
        self.platform
            .update_metadata(&conn.user_id, conn.id, metadata, conn.expires_at)
            .await?
            .ok_or_else(|| ApiError::not_found("no such Scaleway connection"))?;
        // Cached credentials carry the root as their `projectId`: every replica drops them.
        self.platform.broker().evict(conn.id).await;
        Ok(())
    }
}

fn ids(list: &[Project]) -> Vec<String> {
    list.iter().map(|p| p.id.clone()).collect()
}

/// S3: save which projects are enabled. Ids outside the organization's list are ignored; a save that
/// would disable the root changes nothing.
#[utoipa::path(
    post,
    path = "/scaleway_api/scaleway/projects",
    tag = "scaleway",
    params(PickParams<ScalewayConnector>),
    request_body(content = SaveProjectsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Saved", body = SelectionSaved),
        (status = 400, description = "No body, `projects` not a list, or the root disabled (`invalid_request`)", body = ErrorBody),
        StoredKeyRefusals,
        UpstreamRefusals<ScalewayConnector>,
        PickRefusals<ScalewayConnector>,
        BodyRefusals,
    )
)]
pub(crate) async fn save_projects(
    connector: web::Data<ScalewayConnector>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: Option<SaveProjectsRequest> =
        connector_core::http::read_optional_body(payload).await?;
    let body = body.ok_or_else(|| ApiError::invalid_request(NO_BODY))?;
    let choices: Vec<ProjectChoice> = serde_json::from_value(body.projects).map_err(|_| {
        ApiError::invalid_request("projects must be a list of {projectId, enabled}")
    })?;
    let (conn, list) = connector.with_projects(&caller, &req).await?;
    let mut selection = selection_of(&conn);
    selection.save(
        &ids(&list),
        choices.into_iter().map(|c| (c.project_id, c.enabled)),
    )?;
    connector.store_selection(&conn, &selection, &[]).await?;
    Ok(HttpResponse::Ok().json(SelectionSaved {
        success: true,
        project_id: None,
        message: "Projects saved",
    }))
}

/// S4: make a project of the organization the root, which is the connection's project.
#[utoipa::path(
    post,
    path = "/scaleway_api/scaleway/root-project",
    tag = "scaleway",
    params(PickParams<ScalewayConnector>),
    request_body(content = RootProjectRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The root and the connection's project changed", body = SelectionSaved),
        (status = 400, description = "No projectId, or not a project of the organization (`invalid_request`)", body = ErrorBody),
        StoredKeyRefusals,
        UpstreamRefusals<ScalewayConnector>,
        PickRefusals<ScalewayConnector>,
        BodyRefusals,
    )
)]
pub(crate) async fn set_root_project(
    connector: web::Data<ScalewayConnector>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: Option<RootProjectRequest> =
        connector_core::http::read_optional_body(payload).await?;
    let id = body
        .and_then(|b| b.project_id)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid_request("projectId is required"))?;
    let (conn, list) = connector.with_projects(&caller, &req).await?;
    let mut selection = selection_of(&conn);
    selection.set_root(&ids(&list), &id)?;
    let name = list
        .iter()
        .find(|p| p.id == id)
        .map(|p| p.name.as_str())
        .unwrap_or_default();
    let extra = [("projectId", id.as_str()), ("projectName", name)];
    connector.store_selection(&conn, &selection, &extra).await?;
    Ok(HttpResponse::Ok().json(SelectionSaved {
        success: true,
        project_id: Some(id),
        message: "Root project set successfully",
    }))
}

/// The root project of the caller's connection (no provider call).
#[utoipa::path(
    get,
    path = "/scaleway_api/scaleway/root-project",
    tag = "scaleway",
    params(PickParams<ScalewayConnector>),
    responses(
        (status = 200, description = "The root, if any", body = RootProjectView),
        PickRefusals<ScalewayConnector>,
    )
)]
pub(crate) async fn root_project(
    connector: web::Data<ScalewayConnector>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let conn = connector.pick_connection(&caller.user, &req).await?;
    let root = selection_of(&conn).root().map(str::to_owned);
    Ok(HttpResponse::Ok().json(RootProjectView {
        has_root_project: root.is_some(),
        project_id: root,
    }))
}
