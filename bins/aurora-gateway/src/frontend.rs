//! The listing, status and disconnect routes of Aurora's own frontend (docs/http-api.md §9.1, C1–C4),
//! built from stored state and each plugin's `Connector::frontend_summary`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use connector_core::{
    Actor, ApiError, Caller, ConnectionRecord, ConnectionStatus, Connector, FrontendSummary,
    ProviderId, UserToken,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::app::AppState;

/// The providers C2 always names, connected or not (§9.1).
const FRONTEND_PROVIDERS: [&str; 5] = ["gcp", "aws", "azure", "scaleway", "tailscale"];

/// C4's answer when nothing was removed.
const NOTHING_TO_DELETE: &str = "No tokens found for provider – nothing to delete";

type State = web::Data<AppState>;

/// Mount C1–C4.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, resource};
    cfg.service(resource("/api/connected-accounts/{user_id}").route(get().to(connected_accounts)))
        .service(
            resource("/api/connected-accounts/{user_id}/{provider}")
                .route(delete().to(disconnect_provider)),
        )
        .service(resource("/api/connectors/status").route(get().to(connectors_status)))
        .service(resource("/user_tokens").route(get().to(user_tokens)));
}

/// §9.0 rule 5: a user id in the path (or C3's query) must be the caller's, decided before any lookup.
fn same_user(caller: &Caller, given: &str) -> Result<(), ApiError> {
    if given == caller.user.as_str() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the user id in the path is not the caller's (X-User-ID)",
        ))
    }
}

/// §9.0 rule 8: active and degraded connections count as connected.
fn is_connected(c: &ConnectionRecord) -> bool {
    matches!(
        c.status,
        ConnectionStatus::Active | ConnectionStatus::Degraded
    )
}

/// The caller's connected connections per provider, most recently updated (the primary) first.
async fn connected(
    state: &State,
    caller: &Caller,
) -> Result<BTreeMap<ProviderId, Vec<ConnectionRecord>>, ApiError> {
    let rows = state
        .platform
        .store()
        .list_connections(&caller.user, None)
        .await?;
    let mut by: BTreeMap<ProviderId, Vec<ConnectionRecord>> = BTreeMap::new();
    for row in rows.into_iter().filter(is_connected) {
        by.entry(row.provider.clone()).or_default().push(row);
    }
    for rows in by.values_mut() {
        rows.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    }
    Ok(by)
}

/// Each linked provider with connected connections, its plugin and their summaries (primary first).
async fn summaries(
    state: &State,
    caller: &Caller,
) -> Result<Vec<(ProviderId, Vec<FrontendSummary>)>, ApiError> {
    let mut out = Vec::new();
    for (provider, rows) in connected(state, caller).await? {
        // A connection whose plugin is no longer linked is not shown: nothing can use it.
        if let Some(connector) = state.connectors.get(&provider) {
            let list = rows.iter().map(|r| connector.frontend_summary(r)).collect();
            out.push((provider, list));
        }
    }
    Ok(out)
}

/// C1: the caller's connected accounts, one per provider (the primary connection's): `{"accounts":
/// {"<provider>": {"isConnected": true, "name", "displayText", …}}}`.
#[utoipa::path(get, path = "/api/connected-accounts/{user_id}", tag = "frontend",
    params(("user_id" = String, Path, description = "Must be the caller's X-User-ID")),
    responses((status = 200, description = "One entry per provider with a connected connection", body = Object),
        (status = 403, body = connector_core::error::ErrorBody, description = "The path's user id is not the caller's")))]
pub async fn connected_accounts(
    caller: Caller,
    state: State,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    same_user(&caller, &user_id)?;
    let mut accounts = Map::new();
    for (provider, list) in summaries(&state, &caller).await? {
        if let Some(primary) = list.into_iter().next() {
            let mut value = Map::new();
            value.insert("isConnected".into(), Value::Bool(true));
            value.extend(primary.account);
            accounts.insert(provider.to_string(), Value::Object(value));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "accounts": accounts })))
}

/// C2: every provider the frontend knows, and each linked one, with `connected` and, when connected,
/// the primary connection's status fields. `canExecute` holds when any connected connection allows
/// it (AWS: a connection with a role that is not read-only).
#[utoipa::path(get, path = "/api/connectors/status", tag = "frontend",
    responses((status = 200, description = "`{\"connectors\": {\"<provider>\": {\"connected\": bool, …}}}`, always with gcp, aws, azure, scaleway and tailscale", body = Object)))]
pub async fn connectors_status(caller: Caller, state: State) -> Result<HttpResponse, ApiError> {
    let mut connectors = Map::new();
    for p in FRONTEND_PROVIDERS {
        connectors.insert(p.into(), json!({ "connected": false }));
    }
    for id in state.connectors.keys() {
        connectors
            .entry(id.to_string())
            .or_insert_with(|| json!({ "connected": false }));
    }
    for (provider, list) in summaries(&state, &caller).await? {
        let can_execute = list
            .iter()
            .any(|s| s.status.get("canExecute") == Some(&Value::Bool(true)));
        let Some(primary) = list.into_iter().next() else {
            continue;
        };
        let mut value = Map::new();
        value.insert("connected".into(), Value::Bool(true));
        let had_can_execute = primary.status.contains_key("canExecute");
        value.extend(primary.status);
        if had_can_execute {
            value.insert("canExecute".into(), Value::Bool(can_execute));
        }
        connectors.insert(provider.to_string(), Value::Object(value));
    }
    Ok(HttpResponse::Ok().json(json!({ "connectors": connectors })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokensQuery {
    /// When given, must be the caller's X-User-ID.
    user_id: Option<String>,
}

/// C3: a bare array, one entry per provider with a connected connection (the primary's).
#[utoipa::path(get, path = "/user_tokens", tag = "frontend", params(TokensQuery),
    responses((status = 200, body = Vec<connector_core::UserToken>),
        (status = 403, body = connector_core::error::ErrorBody, description = "`user_id` is not the caller's")))]
pub async fn user_tokens(
    caller: Caller,
    state: State,
    q: web::Query<TokensQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Some(u) = q.user_id.as_deref().filter(|u| !u.is_empty()) {
        same_user(&caller, u)?;
    }
    let tokens: Vec<UserToken> = summaries(&state, &caller)
        .await?
        .into_iter()
        .filter_map(|(_, list)| list.into_iter().next().map(|s| s.token))
        .collect();
    Ok(HttpResponse::Ok().json(tokens))
}

/// C4: remove every connection of `{provider}` the caller sees, with that provider's clean-up.
/// Idempotent: nothing to remove, or a provider id this gateway does not serve, answers 200 with
/// `disconnected: 0`.
#[utoipa::path(delete, path = "/api/connected-accounts/{user_id}/{provider}", tag = "frontend",
    params(("user_id" = String, Path, description = "Must be the caller's X-User-ID"),
        ("provider" = String, Path, description = "A provider id (`^[a-z0-9_]{1,40}$`); one this gateway does not serve removes nothing")),
    responses((status = 200, description = "`{\"success\": true, \"message\", \"disconnected\": n}`", body = Object),
        (status = 400, body = connector_core::error::ErrorBody, description = "A malformed provider id"),
        (status = 403, body = connector_core::error::ErrorBody, description = "The path's user id is not the caller's"),
        (status = 503, body = connector_core::error::ErrorBody, description = "The secret store is unavailable; what was not removed stays, and a retry is safe")))]
pub async fn disconnect_provider(
    caller: Caller,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, provider) = path.into_inner();
    same_user(&caller, &user_id)?;
    let well_formed = !provider.is_empty()
        && provider.len() <= 40
        && provider
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(ApiError::invalid_request(
            "provider is 1-40 characters of a-z, 0-9 and _",
        ));
    }
    let connector = ProviderId::parse(&provider)
        .ok()
        .and_then(|id| state.connectors.get(&id).map(Arc::clone));
    let n = match connector {
        None => 0,
        Some(connector) => remove_all(&state, &caller, connector.as_ref()).await?,
    };
    let message = match (n, provider.as_str()) {
        (0, _) => NOTHING_TO_DELETE.to_owned(),
        (_, "aws") => "AWS connection(s) removed".to_owned(),
        (_, p) => format!("Removed {p} credentials"),
    };
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": message,
        "disconnected": n,
    })))
}

/// Remove the caller's connections of one provider: the plugin's own way when it has one, else
/// `Platform::disconnect_all` (each connection's revoke, secret and row). A failure (the secret store
/// down: 503) leaves the rest in place, so a retry is safe.
async fn remove_all(
    state: &State,
    caller: &Caller,
    connector: &dyn Connector,
) -> Result<usize, ApiError> {
    match connector.disconnect_all(&caller.user).await {
        Some(n) => n,
        None => {
            state
                .platform
                .disconnect_all(connector, &caller.user, Actor::User)
                .await
        }
    }
}
