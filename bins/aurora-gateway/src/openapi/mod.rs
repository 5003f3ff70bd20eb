//! The OpenAPI document: the shared routes (derived from the handlers) merged with each plugin's own,
//! then completed with what the gateway answers on every route whatever the handler (§1): the
//! identity headers as security schemes with their 401, the answers about a request body (400, 408,
//! 413, 415) and the 429 of the rate-limited routes. `cargo xtask schemathesis` tests the served
//! document against the running gateway.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::registry::Connectors;
use crate::routes;

mod answers;
mod merge;
use self::answers::*;
use self::merge::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora Connectors",
        description = "Connects users' cloud accounts to the Aurora platform. Every route except the \
            service ones needs `X-User-ID`, and `X-Internal-Secret` when the gateway has one (the \
            `userId` and `internalSecret` security schemes). Errors answer \
            `{\"status\":\"error\",\"code\",\"message\"}` (`ErrorBody`)."
    ),
    paths(
        routes::healthz,
        routes::readyz,
        routes::metrics,
        routes::openapi,
        routes::providers,
        routes::list_connections,
        routes::get_connection,
        routes::delete_connection,
        routes::validate_connection,
        routes::connection_credentials,
        routes::audit,
        crate::frontend::connected_accounts,
        crate::frontend::connectors_status,
        crate::frontend::user_tokens,
        crate::frontend::disconnect_provider,
    ),
    components(schemas(
        connector_core::error::ErrorBody,
        connector_core::ConnectionView,
        connector_core::ProviderInfo,
        connector_core::DisconnectResponse,
        routes::AuditEventDoc,
        connector_core::UserToken,
    ))
)]
struct SharedApi;

/// The shared routes that need no caller identity (the gateway's open paths; each plugin names its
/// own in `ProviderInfo::open_paths`).
const SERVICE_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/api/openapi.json"];

/// The security scheme of `X-User-ID`.
pub const USER_SCHEME: &str = "userId";
/// The security scheme of `X-Internal-Secret`.
pub const SECRET_SCHEME: &str = "internalSecret";

const SCHEMA_REF: &str = "#/components/schemas/";
const ERROR_BODY: &str = "ErrorBody";
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One plugin's part of the document.
pub struct PluginApi {
    /// The provider id: the prefix of the plugin's schema names.
    pub provider: String,
    pub doc: utoipa::openapi::OpenApi,
    pub open_paths: Vec<&'static str>,
    pub connect_paths: Vec<&'static str>,
}

/// The whole document as JSON, built once at start-up.
pub fn document(connectors: &Connectors) -> String {
    let plugins: Vec<PluginApi> = connectors
        .values()
        .map(|c| {
            let info = c.info();
            PluginApi {
                provider: info.id.as_str().to_owned(),
                doc: c.openapi(),
                open_paths: info.open_paths,
                connect_paths: info.connect_paths,
            }
        })
        .collect();
    build(&plugins).to_string()
}

fn to_value(doc: &utoipa::openapi::OpenApi) -> Value {
    serde_json::to_value(doc).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an OpenAPI document could not be serialized");
        json!({})
    })
}

/// The shared part, each plugin's part with its schemas qualified, and the gateway's own answers.
pub fn build(plugins: &[PluginApi]) -> Value {
    let mut shared = SharedApi::openapi();
    shared.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = to_value(&shared);
    let mut open: Vec<&str> = SERVICE_PATHS.to_vec();
    let mut limited: Vec<&str> = vec![crate::ratelimit::CREDENTIALS_ROUTE];
    for p in plugins {
        let mut own = to_value(&p.doc);
        qualify_schemas(&mut own, &p.provider, &doc);
        merge(&mut doc, own);
        open.extend(&p.open_paths);
        limited.extend(&p.connect_paths);
    }
    document_identity(&mut doc, &open);
    document_body_answers(&mut doc);
    document_rate_limits(&mut doc, &limited);
    doc
}

#[cfg(test)]
mod tests;
