//! The AWS routes (§3): setup, external-ID rotation, connect, the metadata listing, disconnect; and
//! their OpenAPI description.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use connector_core::error::ErrorBody;
use connector_core::http::{parse_connection_id, query_value, read_optional_body};
use connector_core::kit::{BodyRefusals, CallerHeader, CallerRefusals};
use connector_core::secret::StoredDocument;
use connector_core::{
    Actor, ApiError, Caller, ConnectSpec, ConnectionRecord, ConnectionStatus, DisconnectResponse,
    UserId,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::external_id;
use crate::input::{self, AuthRequest, DisconnectRequest, Partition, RotateRequest};
use crate::{partition_of_arn, rfc3339, setup, AwsConnector, StoredSecret};

/// What the user needs to create the role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub message: String,
    /// The workspace's external ID (stable until rotated). Put it in the trust policy's condition.
    pub external_id: String,
    /// The role's trust policy: the gateway's principal, with `StringEquals` on `sts:ExternalId`.
    #[schema(value_type = Object)]
    pub trust_policy: serde_json::Value,
    /// The AWS managed policies of the read-only mode (attached by the template by default).
    pub read_only_policy_arns: Vec<String>,
    /// A CloudFormation template (YAML) that creates the role; the external ID is its `ExternalId`
    /// parameter.
    pub cloud_formation_template: String,
    /// The console link that creates the stack: quick-create with the operator's hosted template
    /// (`templateUrl`), else the create-stack page where the template above is uploaded.
    pub quick_create_url: String,
    /// Where the operator hosts the template (`AURORA_AWS_TEMPLATE_URL`), if anywhere.
    pub template_url: Option<String>,
    /// The principal the trust policy names.
    pub principal_arn: String,
    /// The largest session Aurora asks for, in seconds (the role's `MaxSessionDuration` must allow it).
    pub session_duration_seconds: u32,
}

/// Answer of a successful connect.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub message: String,
    /// The AWS account number (the connection's `accountId`).
    #[schema(example = "123456789012")]
    pub account_id: String,
    /// When the session assumed to check the role ends.
    pub expiration: DateTime<Utc>,
    pub connection_id: uuid::Uuid,
}

/// One connected AWS account (metadata only: no credentials).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub connection_id: uuid::Uuid,
    #[schema(example = "123456789012")]
    pub account_id: String,
    pub role_arn: Option<String>,
    pub read_only_role_arn: Option<String>,
    /// The region STS is called in for this account.
    pub region: Option<String>,
    /// When the last session the gateway assumed to check this connection (connect or validate) ends.
    pub expiration: Option<String>,
    pub status: ConnectionStatus,
}

/// Answer of `GET /aws/get-credentials`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub has_credentials: bool,
    pub accounts: Vec<AccountView>,
}

connector_core::provider_routes! {
    AwsConnector;
    get SETUP_PATH = "/aws/setup" => setup_info,
    post ROTATE_PATH = "/aws/setup/rotate-external-id" => rotate_external_id,
    post AUTH_PATH = "/aws/auth" => auth,
    get LIST_PATH = "/aws/get-credentials" => get_credentials,
    post DISCONNECT_PATH = "/aws/disconnect" => disconnect,
}

fn external_id_mismatch() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        connector_core::error::ErrorCode::Plugin("external_id_mismatch"),
        "externalId is not this workspace's external ID: copy it from GET /aws/setup (it changes when \
         rotated), require it in the role's trust policy, and send the same value here",
    )
}

fn parse_account_id(raw: &str) -> Result<String, ApiError> {
    let a = raw.trim();
    if input::is_account_id(a) {
        Ok(a.to_owned())
    } else {
        Err(ApiError::invalid_request(
            "accountId must be a 12-digit AWS account number",
        ))
    }
}

async fn setup_response(
    connector: &AwsConnector,
    user: &UserId,
    rotate: bool,
) -> Result<HttpResponse, ApiError> {
    let principal = connector.principal().await?;
    let cfg = connector.config();
    let partition = partition_of_arn(&principal).unwrap_or_else(|| cfg.partition());
    let region = if Partition::of_region(&cfg.region) == Some(partition) {
        cfg.region.clone()
    } else {
        partition.default_region().to_owned()
    };
    let ext = if rotate {
        connector.external_ids.rotate(user).await?
    } else {
        connector.external_ids.get(user).await?
    };
    let ext = ext.expose_secret();
    let template = setup::cloudformation_template(&principal, cfg.max_session_duration());
    let message = if rotate {
        "a new external ID replaces the previous one: update the trust policy of each role, then connect \
         each account again"
    } else {
        "create a role that trusts the principal below with this external ID (or create the stack from \
         the template), then send its ARN to POST /aws/auth"
    };
    let body = SetupResponse {
        status: "success",
        message: message.into(),
        external_id: ext.to_owned(),
        trust_policy: setup::trust_policy(&principal, &serde_json::Value::String(ext.to_owned())),
        read_only_policy_arns: setup::read_only_policy_arns(partition),
        cloud_formation_template: setup::to_yaml(&template),
        quick_create_url: setup::quick_create_url(
            partition,
            &region,
            cfg.template_url.as_deref(),
            ext,
        ),
        template_url: cfg.template_url.clone(),
        principal_arn: principal,
        session_duration_seconds: cfg.session_seconds,
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body))
}

/// What the user needs to create the role: the workspace's external ID (created on first call),
/// the trust policy, a CloudFormation template and the console link.
#[utoipa::path(
    get,
    path = "/aws/setup",
    tag = "aws",
    params(CallerHeader),
    responses(
        (status = 200, description = "The setup of the caller's workspace", body = SetupResponse),
        (status = 401, description = "Missing or malformed caller identity", body = ErrorBody),
        (status = 502, description = "STS could not be reached to find the gateway's principal (`provider_unavailable`)", body = ErrorBody),
        (status = 503, description = "The gateway's own AWS credentials are missing or refused, or the database or secret store is unavailable (`dependency_unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn setup_info(
    connector: web::Data<AwsConnector>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    setup_response(&connector, &caller.user, false).await
}

/// Replace the workspace's external ID. Existing connections keep the one they were made with until
/// they are connected again.
#[utoipa::path(
    post,
    path = "/aws/setup/rotate-external-id",
    tag = "aws",
    params(CallerHeader),
    request_body(content = Option<RotateRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "The setup with the new external ID", body = SetupResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or malformed caller identity", body = ErrorBody),
        (status = 403, description = "`userId` in the body is not the caller (`user_mismatch`)", body = ErrorBody),
        (status = 502, description = "STS unavailable", body = ErrorBody),
        (status = 503, description = "The gateway's own AWS credentials, the database or the secret store are unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn rotate_external_id(
    connector: web::Data<AwsConnector>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Some(b) = read_optional_body::<RotateRequest>(payload).await? {
        caller.bind_owner(b.user_id.as_deref())?;
    }
    // The principal first: a gateway without AWS credentials must not rotate and then fail.
    connector.principal().await?;
    let resp = setup_response(&connector, &caller.user, true).await?;
    connector
        .platform
        .audit(
            &caller.user,
            None,
            connector_core::AuditAction::Plugin("rotate_external_id"),
            Actor::User,
            serde_json::json!({"provider": crate::PROVIDER_ID}),
        )
        .await;
    Ok(resp)
}

/// Connect an AWS account: assume the role with the workspace's external ID, check the account,
/// refuse a role that does not require the external ID, and store the connection.
#[utoipa::path(
    post,
    path = "/aws/auth",
    tag = "aws",
    params(CallerHeader),
    request_body = AuthRequest,
    responses(
        (status = 200, description = "The role works; the connection is stored (or updated for an account already connected)", body = AuthResponse),
        (status = 400, description = "A malformed field (`invalid_request`), or an externalId that is not the workspace's (`external_id_mismatch`)", body = ErrorBody),
        CallerRefusals,
        (status = 422, description = "AWS refused to let the gateway assume the role, or the session is in another account (`credentials_rejected`); or the role can be assumed without the external ID (`external_id_not_enforced`)", body = ErrorBody),
        (status = 502, description = "STS throttled, timed out, answered 5xx or could not be reached, after bounded retries (`provider_unavailable`)", body = ErrorBody),
        (status = 503, description = "The gateway's own AWS credentials, the database or the secret store are unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn auth(
    connector: web::Data<AwsConnector>,
    caller: Caller,
    body: web::Json<AuthRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.bind_owner(body.user_id.as_deref())?;
    let input = body.check()?;
    drop(body);
    let expected = connector.external_ids.get(&caller.user).await?;
    if !external_id::matches(&input.external_id, &expected) {
        return Err(external_id_mismatch());
    }
    let cfg = connector.config();
    let region = cfg.region_for(input.role.partition, input.region.as_deref());
    let session_name = input::session_name(caller.user.as_str());
    let ctx = connector.ctx();
    let main = ctx
        .verify_role(&input.role, &input.external_id, &session_name, &region)
        .await?;
    if let Some(ro) = &input.read_only_role {
        ctx.verify_role(ro, &input.external_id, &session_name, &region)
            .await?;
    }
    let account = main.account.clone();
    let metadata = serde_json::json!({
        "roleArn": input.role.arn,
        "roleName": input.role.name,
        "readOnlyRoleArn": input.read_only_role.as_ref().map(|r| &r.arn),
        "region": region,
        "partition": input.role.partition.as_str(),
        "expiration": rfc3339(main.expiration),
    });
    let secret = StoredSecret {
        role_arn: input.role.arn.clone(),
        read_only_role_arn: input.read_only_role.as_ref().map(|r| r.arn.clone()),
        external_id: input.external_id.clone(),
        region: region.clone(),
    }
    .encode()?;
    let spec = ConnectSpec {
        user: caller.user.clone(),
        provider: connector.provider.clone(),
        account_id: account.clone(),
        display_name: Some(format!("{} ({account})", input.role.name)),
        read_only: false,
        metadata,
        expires_at: None,
        status: ConnectionStatus::Active,
        secret,
    };
    let (record, created) = connector.platform.connect(spec, Actor::User).await?;
    let message = format!(
        "AWS account {account} {} with role {}{}",
        if created { "connected" } else { "reconnected" },
        input.role.name,
        match &input.read_only_role {
            Some(r) => format!(" and read-only role {}", r.name),
            None => String::new(),
        }
    );
    Ok(HttpResponse::Ok().json(AuthResponse {
        status: "success",
        message,
        account_id: account,
        expiration: main.expiration,
        connection_id: record.id.0,
    }))
}

fn account_view(c: &ConnectionRecord) -> AccountView {
    let s = |k: &str| {
        c.metadata
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    AccountView {
        connection_id: c.id.0,
        account_id: c.account_id.clone(),
        role_arn: s("roleArn"),
        read_only_role_arn: s("readOnlyRoleArn"),
        region: s("region"),
        expiration: s("expiration"),
        status: c.status,
    }
}

/// The caller's connected AWS accounts: metadata only (the browser calls this route; credentials
/// are for internal services, through `/api/connections/{id}/credentials`).
#[utoipa::path(
    get,
    path = "/aws/get-credentials",
    tag = "aws",
    params(
        ("X-User-ID" = String, Header, description = "The caller's user id"),
        ("accountId" = Option<String>, Query, description = "Only this account (12 digits; blanks around them are ignored)", pattern = r"^\s*[0-9]{12}\s*$"),
    ),
    responses(
        (status = 200, description = "The caller's AWS accounts", body = AccountsResponse),
        (status = 400, description = "Malformed accountId", body = ErrorBody),
        (status = 401, description = "Missing or malformed caller identity", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn get_credentials(
    connector: web::Data<AwsConnector>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let account = query_value(&req, ["accountId", "account_id"])?
        .as_deref()
        .map(parse_account_id)
        .transpose()?;
    let rows = connector
        .platform
        .store()
        .list_connections(&caller.user, Some(&connector.provider))
        .await?;
    let accounts: Vec<AccountView> = rows
        .iter()
        .filter(|c| account.as_deref().is_none_or(|a| c.account_id == a))
        .map(account_view)
        .collect();
    Ok(HttpResponse::Ok().json(AccountsResponse {
        status: "success",
        has_credentials: !accounts.is_empty(),
        accounts,
    }))
}

/// Remove the caller's AWS connections: one (by `connectionId` or `accountId`) or all. The role
/// stays in the user's account; the workspace's external ID stays too.
#[utoipa::path(
    post,
    path = "/aws/disconnect",
    tag = "aws",
    params(
        ("X-User-ID" = String, Header, description = "The caller's user id"),
        ("connectionId" = Option<uuid::Uuid>, Query, description = "Remove only this connection (also accepted in the body)"),
        ("accountId" = Option<String>, Query, description = "Remove only this account's connection (12 digits; also accepted in the body)", pattern = r"^\s*[0-9]{12}\s*$"),
    ),
    request_body(content = Option<DisconnectRequest>, description = "Optional; without an id every AWS connection of the caller is removed", content_type = "application/json"),
    responses(
        (status = 200, description = "How many connections were removed", body = DisconnectResponse),
        (status = 400, description = "Malformed body, connectionId or accountId, or different values in body and query", body = ErrorBody),
        (status = 404, description = "No such AWS connection of the caller", body = ErrorBody),
        BodyRefusals,
    )
)]
pub(crate) async fn disconnect(
    connector: web::Data<AwsConnector>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    connector_core::http::only_query_keys(
        &req,
        &["connectionId", "connection_id", "accountId", "account_id"],
    )?;
    let body = read_optional_body::<DisconnectRequest>(payload).await?;
    if let Some(b) = &body {
        caller.bind_owner(b.user_id.as_deref())?;
    }
    let pick = |from_body: Option<&str>, from_query: Option<String>, name: &str| match (
        from_body, from_query,
    ) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(&b) => Err(ApiError::invalid_request(
            format!("{name} differs between the body and the query string"),
        )),
        (a, b) => Ok(a.map(str::to_owned).or(b)),
    };
    let connection = pick(
        body.as_ref().and_then(|b| b.connection_id()),
        query_value(&req, ["connectionId", "connection_id"])?,
        "connectionId",
    )?;
    let account = pick(
        body.as_ref().and_then(|b| b.account_id()),
        query_value(&req, ["accountId", "account_id"])?,
        "accountId",
    )?;
    let one = match (connection, account) {
        (Some(id), account) => {
            let conn = connector
                .owned_connection(&caller.user, parse_connection_id(&id)?)
                .await?;
            if let Some(a) = account {
                if parse_account_id(&a)? != conn.account_id {
                    return Err(ApiError::invalid_request(
                        "connectionId and accountId name different connections",
                    ));
                }
            }
            Some(conn)
        }
        (None, Some(a)) => {
            let a = parse_account_id(&a)?;
            Some(
                connector
                    .platform
                    .store()
                    .find_connection(&caller.user, &connector.provider, &a)
                    .await?
                    .ok_or_else(|| ApiError::not_found("no AWS connection for this account"))?,
            )
        }
        (None, None) => None,
    };
    let n = match one {
        Some(conn) => {
            connector
                .platform
                .disconnect(connector.get_ref(), &conn, Actor::User)
                .await?;
            1
        }
        None => {
            connector
                .platform
                .disconnect_all(connector.get_ref(), &caller.user, Actor::User)
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(DisconnectResponse::new(n, "AWS")))
}

/// The OpenAPI description of the AWS routes.
#[derive(OpenApi)]
#[openapi(
    paths(setup_info, rotate_external_id, auth, get_credentials, disconnect),
    components(schemas(SetupResponse, AuthRequest, AuthResponse, AccountsResponse, AccountView, DisconnectRequest, RotateRequest, DisconnectResponse, ErrorBody)),
    tags((name = "aws", description = "AWS accounts connected by IAM role assumption with an external ID"))
)]
pub struct AwsApi;

#[cfg(test)]
mod tests;
