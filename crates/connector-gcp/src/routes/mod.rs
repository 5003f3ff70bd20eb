//! The Google Cloud routes (§2): login, callback, setup status, post-auth retry, force-disconnect;
//! and their OpenAPI description.

use connector_core::secret::StoredDocument;
use std::collections::BTreeSet;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use connector_core::error::ErrorBody;
use connector_core::kit::{CallerHeader, Unauthenticated};
use connector_core::store::{OAuthStateRecord, SetupState, SetupTaskRecord};
use connector_core::{
    Actor, ApiError, Caller, ConnectSpec, ConnectionStatus, DisconnectResponse, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use zeroize::Zeroizing;

use crate::oauth::{
    authorization_url, browser_cookie_name, pkce_challenge, random_token, state_hash, SealedLogin,
    STATE_TTL,
};
use crate::setup::{self, Checkpoint};
use crate::{GcpConnector, StoredSecret};

pub const LOGIN_PATH: &str = "/gcp/login";
pub const CALLBACK_PATH: &str = "/gcp/callback";
pub const STATUS_PATH: &str = "/gcp/setup/status/{task_id}";
pub const RETRY_PATH: &str = "/gcp/post-auth-retry";
pub const FORCE_DISCONNECT_PATH: &str = "/api/gcp/force-disconnect";

/// The largest body a route reads (the gateway's limit).
const BODY_LIMIT: usize = 64 * 1024;
/// A `state` or `code` longer than this is not Google's.
const MAX_PARAM_LEN: usize = 2048;

pub(crate) fn configure(connector: web::Data<GcpConnector>, cfg: &mut web::ServiceConfig) {
    cfg.app_data(connector)
        .service(web::resource(LOGIN_PATH).route(web::post().to(login)))
        .service(
            web::resource(CALLBACK_PATH)
                .route(web::get().to(callback_get))
                .route(web::post().to(callback_post)),
        )
        .service(web::resource(STATUS_PATH).route(web::get().to(setup_status)))
        .service(web::resource(RETRY_PATH).route(web::post().to(post_auth_retry)))
        .service(web::resource(FORCE_DISCONNECT_PATH).route(web::post().to(force_disconnect)));
}

/// Body of `POST /gcp/login` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// Answer of `POST /gcp/login`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    #[schema(example = "success")]
    pub status: &'static str,
    /// Where to send the browser: Google's consent screen, with PKCE and a single-use state.
    pub login_url: String,
    /// When the state expires (10 minutes).
    #[serde(rename = "expiresAt")]
    pub expires_at: chrono::DateTime<Utc>,
}

/// Query (GET) or form body (POST) of the callback.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state of the login (required: without it the callback answers 400 `invalid_state`).
    #[param(required = true, min_length = 1, max_length = 2048)]
    pub state: Option<String>,
    /// Set by Google when the user declined (`access_denied`).
    pub error: Option<String>,
}

/// Answer of `GET /gcp/setup/status/{task_id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupStatusResponse {
    pub task_id: uuid::Uuid,
    /// `PENDING`, `STARTED`, `PROGRESS`, `SUCCESS` or `FAILURE`.
    pub state: SetupState,
    /// A human-readable message about the current step.
    pub status: String,
    /// True in `SUCCESS` and `FAILURE`.
    pub complete: bool,
    /// 0-100; never goes down.
    pub progress: i32,
    /// 0 before the first step, then 1 to `total_steps`.
    pub step: i32,
    #[serde(rename = "total_steps")]
    pub total_steps: i32,
    /// Why the setup failed (`FAILURE` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The outcome: `{"status":"success","projects",…}`, `{"status":"needs_selection",
    /// "eligibleProjects":[{"projectId","name"}],…}` or `{"status":"failed","error"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub connection_id: Option<uuid::Uuid>,
}

impl From<SetupTaskRecord> for SetupStatusResponse {
    fn from(t: SetupTaskRecord) -> Self {
        Self {
            task_id: t.id,
            state: t.state,
            status: t.status_message,
            complete: t.state.is_terminal(),
            progress: t.progress,
            step: t.step,
            total_steps: t.total_steps,
            error: t.error,
            result: t.result,
            connection_id: t.connection_id.map(|c| c.0),
        }
    }
}

/// Body of `POST /gcp/post-auth-retry`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryRequest {
    /// The task that ended with `result.status = "needs_selection"`.
    #[serde(alias = "task_id")]
    pub task_id: String,
    /// 1 or more of the eligible projects.
    #[serde(
        default,
        alias = "selected_project_ids",
        alias = "projectIds",
        alias = "project_ids"
    )]
    pub selected_project_ids: Vec<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// Answer of `POST /gcp/post-auth-retry`: the task that continues the setup.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryResponse {
    #[schema(example = "success")]
    pub status: &'static str,
    pub message: String,
    /// The new task to follow with `GET /gcp/setup/status/{task_id}`.
    pub task_id: uuid::Uuid,
}

/// An optional JSON object body: empty, `null`, or an object (at most 64 KiB).
async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(BODY_LIMIT).await {
        Err(_) => Err(ApiError::payload_too_large()),
        Ok(Err(_)) => Err(ApiError::invalid_request(
            "the request body could not be read",
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((LOCATION, to))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish()
}

/// Start the Google sign-in.
#[utoipa::path(
    post,
    path = "/gcp/login",
    tag = "gcp",
    params(CallerHeader),
    request_body(content = Option<LoginRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The authorization URL (PKCE S256, single-use state valid 10 minutes)", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "With `AURORA_GCP_STATE_COOKIE=required` (the default): `aurora_gcp_state_…`, HttpOnly, SameSite=Lax, Path = the callback's, Max-Age = the state's lifetime. The browser must bring it to the callback (a frontend that proxies this call must pass it on)"))),
        Unauthenticated,
        (status = 403, description = "`userId` in the body is not the caller (`user_mismatch`)", body = ErrorBody),
        (status = 503, description = "Google Cloud is not configured (`not_configured`), or the database or secret store is down", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    connector: web::Data<GcpConnector>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let client = connector.client()?;
    let body: Option<LoginRequest> = connector_core::http::read_optional_body(payload).await?;
    caller.bind_owner(body.as_ref().and_then(|b| b.user_id.as_deref()))?;
    let state = random_token();
    let verifier = random_token();
    let challenge = pkce_challenge(&verifier);
    let hash = state_hash(&state);
    let cfg = connector.config();
    // The browser binding (login CSRF): a random value for this browser's cookie; only its hash is
    // kept, sealed with the verifier.
    let browser = cfg.state_cookie.required.then(random_token);
    let plaintext = SealedLogin {
        verifier: verifier.clone(),
        browser_hash: browser.as_ref().map(|b| state_hash(b)),
    }
    .to_bytes();
    let key = connector.state_key(false).await?;
    let sealed = key.seal(&plaintext, hash.as_bytes()).map_err(|_| {
        tracing::error!("could not seal a PKCE verifier");
        ApiError::internal()
    })?;
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(STATE_TTL).unwrap_or_default();
    connector
        .platform
        .store()
        .put_oauth_state(OAuthStateRecord {
            state_hash: hash,
            user_id: caller.user.clone(),
            provider: connector.provider.clone(),
            sealed_verifier: sealed,
            redirect_uri: cfg.redirect_uri.clone(),
            created_at: now,
            expires_at,
        })
        .await?;
    let login_url = authorization_url(cfg, &client.client_id, &state, &challenge);
    let mut answer = HttpResponse::Ok();
    answer.insert_header((CACHE_CONTROL, "no-store"));
    if let Some(b) = &browser {
        answer.append_header((
            SET_COOKIE,
            cfg.state_cookie
                .set_cookie(&browser_cookie_name(&state), b, STATE_TTL),
        ));
    }
    Ok(answer.json(LoginResponse {
        status: "success",
        login_url,
        expires_at,
    }))
}

/// Google's redirect after the consent screen (open: no `X-User-ID`; the state names the user).
#[utoipa::path(
    get,
    path = "/gcp/callback",
    tag = "gcp",
    params(CallbackParams),
    responses(
        (status = 302, description = "To `{AURORA_FRONTEND_URL}/chat?login=gcp_setup_pending&task_id=…` on success, or `?login=gcp_failed` when Google refused the exchange or the user declined"),
        (status = 400, description = "Unknown, expired or already used state, or (with `AURORA_GCP_STATE_COOKIE=required`) a request without the login's browser cookie or with another browser's (`invalid_state`; the state is not used up), or no code (`invalid_request`); nothing is stored", body = ErrorBody),
        (status = 503, description = "Google Cloud is not configured, or a backend is down", body = ErrorBody),
    )
)]
pub(crate) async fn callback_get(
    connector: web::Data<GcpConnector>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<CallbackParams>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_request("the query string is malformed"))?
        .into_inner();
    complete_login(&connector, params, &req).await
}

/// The callback as a form post (`response_mode=form_post`); the form's fields win over the query's.
#[utoipa::path(
    post,
    path = "/gcp/callback",
    tag = "gcp",
    request_body(content = CallbackParams, content_type = "application/x-www-form-urlencoded", description = "code, state, error; each may come in the query instead (the form's wins)"),
    responses(
        (status = 302, description = "As for GET"),
        (status = 400, description = "As for GET", body = ErrorBody),
    )
)]
pub(crate) async fn callback_post(
    connector: web::Data<GcpConnector>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut params = web::Query::<CallbackParams>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid_request("the query string is malformed"))?
        .into_inner();
    let body = read_body(payload).await?;
    for (k, v) in url::form_urlencoded::parse(&body) {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "code" => params.code = v,
            "state" => params.state = v,
            "error" => params.error = v,
            _ => {}
        }
    }
    complete_login(&connector, params, &req).await
}

fn non_empty(v: Option<String>) -> Option<Zeroizing<String>> {
    v.map(|s| Zeroizing::new(s.trim().to_owned()))
        .filter(|s| !s.is_empty())
}

/// Every value of the cookie `name` in the request (all `Cookie` headers).
fn cookie_values<'a>(req: &'a HttpRequest, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// Open a state row's sealed login with the shared key (reloaded once: another replica may have
/// created it).
async fn open_login(
    connector: &GcpConnector,
    record: &OAuthStateRecord,
) -> Result<Option<SealedLogin>, ApiError> {
    for reload in [false, true] {
        let key = connector.state_key(reload).await?;
        if let Ok(v) = key.open(&record.sealed_verifier, record.state_hash.as_bytes()) {
            let v = Zeroizing::new(v);
            return Ok(SealedLogin::from_bytes(&v));
        }
    }
    tracing::error!("a PKCE verifier could not be opened (the state key changed?)");
    Ok(None)
}

async fn complete_login(
    connector: &GcpConnector,
    params: CallbackParams,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let client = connector.client()?;
    let cfg = connector.config();
    let store = connector.platform.store();
    let failed = cfg.frontend_redirect("gcp_failed", None);
    let bad_state = || {
        ApiError::invalid_state(
            "the sign-in state is unknown, expired or already used; start the Google sign-in again",
        )
    };
    let state = non_empty(params.state)
        .filter(|s| s.len() <= MAX_PARAM_LEN)
        .ok_or_else(|| ApiError::invalid_state("the state parameter is missing"))?;
    let hash = state_hash(&state);
    let now = Utc::now();
    let declined = params.error;
    let code = match declined {
        Some(_) => None,
        None => Some(
            non_empty(params.code)
                .filter(|c| c.len() <= MAX_PARAM_LEN)
                .ok_or_else(|| ApiError::invalid_request("the code parameter is missing"))?,
        ),
    };

    // Read the state without using it up, and check that this browser is the one that started the
    // login (login CSRF, RFC 9700 §4.7): a request without the login's cookie, or with another
    // browser's, is refused and leaves the state for the browser that holds the cookie.
    let Some(peeked) = store
        .peek_oauth_state(&hash, now)
        .await?
        .filter(|r| r.provider == connector.provider)
    else {
        // Unknown, expired or used: an expired row is removed on the way.
        store.take_oauth_state(&hash, now).await?;
        return Err(bad_state());
    };
    let sealed = open_login(connector, &peeked)
        .await?
        .ok_or_else(bad_state)?;
    let cookie_name = browser_cookie_name(&state);
    if cfg.state_cookie.required {
        let mut values = cookie_values(req, &cookie_name).peekable();
        if values.peek().is_none() {
            tracing::warn!("GCP callback refused: the request carries no sign-in cookie (another browser, or a proxy that drops it)");
            return Err(ApiError::invalid_state(
                "this browser did not bring the sign-in cookie of this Google sign-in: finish the \
                 sign-in in the browser that started it, or start it again from Aurora (if it keeps \
                 failing, the gateway's frontend or proxy drops the cookie: see AURORA_GCP_STATE_COOKIE)",
            ));
        }
        if !values.any(|v| sealed.browser_matches(v)) {
            tracing::warn!("GCP callback refused: the sign-in cookie is not the one of the browser that started the login");
            return Err(ApiError::invalid_state(
                "this Google sign-in was started in another browser: start the sign-in again from \
                 Aurora in this browser",
            ));
        }
    }
    // Now use the state up (single use: of concurrent callbacks exactly one gets it).
    let record = store
        .take_oauth_state(&hash, now)
        .await?
        .filter(|r| r.provider == connector.provider)
        .ok_or_else(bad_state)?;
    // Every redirect from here on also removes the (used) cookie.
    let clear = cfg
        .state_cookie
        .required
        .then(|| cfg.state_cookie.clear_cookie(&cookie_name));
    let finish = |to: &str| {
        let mut r = redirect(to);
        if let Some(c) = clear.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
            r.headers_mut().append(SET_COOKIE, c);
        }
        r
    };
    let Some(code) = code else {
        // The user declined, or Google refused before issuing a code: the state is used up.
        let err = declined.unwrap_or_default();
        let code = if err.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && err.len() <= 40 {
            err
        } else {
            "other".into()
        };
        tracing::info!(error_code = %code, "Google sign-in ended without a code");
        return Ok(finish(&failed));
    };
    let verifier = sealed.verifier;
    let user = record.user_id;

    let tokens = match connector
        .oauth
        .exchange_code(client, &code, &verifier, &record.redirect_uri)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "the Google code exchange failed");
            return Ok(finish(&failed));
        }
    };
    let Some(refresh_token) = tokens.refresh_token.clone() else {
        tracing::warn!("Google answered the code exchange without a refresh token");
        return Ok(finish(&failed));
    };
    let identity = match connector
        .oauth
        .identity(
            &tokens.access_token,
            tokens.id_token.as_ref(),
            &client.client_id,
        )
        .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the Google account's identity");
            return Ok(finish(&failed));
        }
    };
    if identity.email.is_none() {
        tracing::info!(
            "neither userinfo nor the id_token carries an e-mail; the account id is the subject"
        );
    }
    let secret = StoredSecret {
        refresh_token,
        scope: tokens.scope.clone(),
        sub: identity.sub.clone(),
        email: identity.email.clone(),
        obtained_at: now,
    }
    .encode()?;
    let task_id = uuid::Uuid::new_v4();
    let account_id = identity.account_id().to_owned();
    let spec = ConnectSpec {
        user: user.clone(),
        provider: connector.provider.clone(),
        account_id: account_id.clone(),
        display_name: Some(account_id.clone()),
        read_only: false,
        metadata: serde_json::json!({
            "email": identity.email,
            "sub": identity.sub,
            "scope": tokens.scope,
            "projects": [],
            "setupTaskId": task_id.to_string(),
        }),
        expires_at: None,
        status: ConnectionStatus::Pending,
        secret,
    };
    let (conn, _) = connector.platform.connect(spec, Actor::User).await?;
    store
        .cancel_setup_tasks(
            &user,
            &connector.provider,
            Some(conn.id),
            "superseded: the Google account signed in again",
        )
        .await?;
    let cp = Checkpoint::new(conn.id, &account_id, Some(&identity.sub));
    let task = setup::new_task(&user, &cp, task_id, 0, "Queued: waiting for a worker");
    if let Err(e) = store.create_setup_task(task).await {
        // Without a task the connection would stay pending: undo it (revokes the new grant).
        if let Err(undo) = connector
            .platform
            .disconnect(connector, &conn, Actor::System)
            .await
        {
            tracing::error!(error = %undo, connection = %conn.id, "could not undo a connection whose setup task was not queued");
        }
        return Err(e.into());
    }
    connector
        .platform
        .audit(
            &user,
            Some(&conn),
            connector_core::AuditAction::SetupQueued,
            Actor::User,
            serde_json::json!({"taskId": task_id}),
        )
        .await;
    tracing::info!(connection = %conn.id, task = %task_id, "Google account connected; setup queued");
    Ok(finish(
        &cfg.frontend_redirect("gcp_setup_pending", Some(task_id)),
    ))
}

async fn owned_task(
    connector: &GcpConnector,
    user: &UserId,
    raw: &str,
) -> Result<SetupTaskRecord, ApiError> {
    let not_found = || ApiError::not_found("no such setup task");
    let id = uuid::Uuid::parse_str(raw.trim()).map_err(|_| not_found())?;
    connector
        .platform
        .store()
        .get_setup_task(user, id)
        .await?
        .filter(|t| t.provider == connector.provider)
        .ok_or_else(not_found)
}

/// The progress of a setup task of the caller.
#[utoipa::path(
    get,
    path = "/gcp/setup/status/{task_id}",
    tag = "gcp",
    params(
        ("X-User-ID" = String, Header, description = "The caller's user id"),
        ("task_id" = uuid::Uuid, Path, description = "The task id of the callback's redirect or of a retry"),
    ),
    responses(
        (status = 200, description = "The task's state, step and progress", body = SetupStatusResponse),
        Unauthenticated,
        (status = 404, description = "No such task of the caller (also another user's task)", body = ErrorBody),
        (status = 503, description = "Google Cloud is not configured, or the database is down", body = ErrorBody),
    )
)]
pub(crate) async fn setup_status(
    connector: web::Data<GcpConnector>,
    caller: Caller,
    task_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    connector.client()?;
    let task = owned_task(&connector, &caller.user, &task_id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SetupStatusResponse::from(task)))
}

/// Continue a setup that asked the user to choose projects.
#[utoipa::path(
    post,
    path = "/gcp/post-auth-retry",
    tag = "gcp",
    params(CallerHeader),
    request_body = RetryRequest,
    responses(
        (status = 200, description = "A new task continues the setup with the chosen projects", body = RetryResponse),
        Unauthenticated,
        (status = 400, description = "No project chosen, or one that is not eligible (`invalid_request`)", body = ErrorBody),
        (status = 403, description = "`userId` in the body is not the caller", body = ErrorBody),
        (status = 404, description = "No such task of the caller, or its connection is gone", body = ErrorBody),
        (status = 409, description = "The task is not waiting for a project choice (`conflict`)", body = ErrorBody),
        (status = 503, description = "Google Cloud is not configured, or the database is down", body = ErrorBody),
    )
)]
pub(crate) async fn post_auth_retry(
    connector: web::Data<GcpConnector>,
    caller: Caller,
    body: web::Json<RetryRequest>,
) -> Result<HttpResponse, ApiError> {
    connector.client()?;
    let body = body.into_inner();
    caller.bind_owner(body.user_id.as_deref())?;
    let task = owned_task(&connector, &caller.user, &body.task_id).await?;
    let waiting = task.state == SetupState::Success
        && task
            .result
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(|s| s.as_str())
            == Some("needs_selection");
    if !waiting {
        return Err(ApiError::conflict(
            "this setup task is not waiting for a project choice",
        ));
    }
    let mut cp: Checkpoint = serde_json::from_value(task.input.clone()).map_err(|_| {
        tracing::error!(task = %task.id, "a GCP setup checkpoint does not decode");
        ApiError::internal()
    })?;
    let mut seen = BTreeSet::new();
    let chosen: Vec<String> = body
        .selected_project_ids
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| seen.insert(p.clone()))
        .collect();
    if chosen.is_empty() || chosen.iter().any(String::is_empty) {
        return Err(ApiError::invalid_request(
            "selectedProjectIds must name 1 or more of the eligible projects",
        ));
    }
    let eligible: BTreeSet<&str> = cp
        .eligible()
        .iter()
        .map(|p| p.project_id.as_str())
        .collect();
    let not_eligible = chosen
        .iter()
        .filter(|p| !eligible.contains(p.as_str()))
        .count();
    if not_eligible > 0 {
        return Err(ApiError::invalid_request(format!(
            "{not_eligible} of the selectedProjectIds {} not among the eligible projects of this setup",
            if not_eligible == 1 { "is" } else { "are" }
        )));
    }
    let conn = connector
        .platform
        .store()
        .get_connection(&caller.user, cp.connection_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("the Google Cloud connection of this setup no longer exists")
        })?;
    let store = connector.platform.store();
    store
        .cancel_setup_tasks(
            &caller.user,
            &connector.provider,
            Some(conn.id),
            "superseded by a new project choice",
        )
        .await?;
    let n = chosen.len();
    cp.chosen = Some(chosen);
    cp.selected_by_user = true;
    cp.completed_step = 4;
    cp.apis.clear();
    cp.access.clear();
    let new_id = uuid::Uuid::new_v4();
    let message = format!(
        "Queued: continuing with the {n} project{} you chose",
        if n == 1 { "" } else { "s" }
    );
    store
        .create_setup_task(setup::new_task(&caller.user, &cp, new_id, 4, &message))
        .await?;
    connector
        .platform
        .audit(
            &caller.user,
            Some(&conn),
            connector_core::AuditAction::SetupProjectsSelected,
            Actor::User,
            serde_json::json!({"taskId": new_id, "previousTaskId": task.id, "projects": n}),
        )
        .await;
    Ok(HttpResponse::Ok().json(RetryResponse {
        status: "success",
        message,
        task_id: new_id,
    }))
}

/// Remove every Google Cloud connection of the caller, revoking at Google and deleting every GCP
/// secret of the caller.
#[utoipa::path(
    post,
    path = "/api/gcp/force-disconnect",
    tag = "gcp",
    params(CallerHeader),
    request_body(content = Option<LoginRequest>, content_type = "application/json", description = "Optional `{\"userId\"}`"),
    responses(
        (status = 200, description = "How many connections were removed; running setup tasks are cancelled", body = DisconnectResponse),
        Unauthenticated,
        (status = 403, description = "`userId` in the body is not the caller", body = ErrorBody),
        (status = 503, description = "Google Cloud is not configured, or a backend is down", body = ErrorBody),
    )
)]
pub(crate) async fn force_disconnect(
    connector: web::Data<GcpConnector>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    connector.client()?;
    let body: Option<LoginRequest> = connector_core::http::read_optional_body(payload).await?;
    caller.bind_owner(body.as_ref().and_then(|b| b.user_id.as_deref()))?;
    let n = connector.force_disconnect(&caller.user).await?;
    Ok(HttpResponse::Ok().json(DisconnectResponse::new(n, "Google Cloud")))
}

/// The OpenAPI description of the Google Cloud routes.
#[derive(OpenApi)]
#[openapi(
    paths(login, callback_get, callback_post, setup_status, post_auth_retry, force_disconnect),
    components(schemas(LoginRequest, LoginResponse, CallbackParams, SetupStatusResponse, SetupState, RetryRequest, RetryResponse, DisconnectResponse, ErrorBody)),
    tags((name = "gcp", description = "Google Cloud accounts connected with OAuth 2.0 (PKCE) and an asynchronous setup"))
)]
pub struct GcpApiDoc;

#[cfg(test)]
mod tests;
