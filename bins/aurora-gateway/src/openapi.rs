//! The OpenAPI document: the shared routes (derived from the handlers) merged with each plugin's own.

use utoipa::OpenApi;

use crate::registry::Connectors;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora Connectors",
        description = "Connects users' cloud accounts to the Aurora platform. Every route except the \
            service ones needs `X-User-ID`, and `X-Internal-Secret` when the gateway has one. Errors \
            answer `{\"status\":\"error\",\"code\",\"message\"}`."
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
    ),
    components(schemas(
        connector_core::error::ErrorBody,
        connector_core::ConnectionView,
        connector_core::ProviderInfo,
        connector_core::DisconnectResponse,
    ))
)]
struct SharedApi;

/// The whole document as JSON, built once at start-up.
pub fn document(connectors: &Connectors) -> String {
    let mut doc = SharedApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for c in connectors.values() {
        doc.merge(c.openapi());
    }
    doc.to_json().unwrap_or_else(|_| "{}".to_owned())
}
