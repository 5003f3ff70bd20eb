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
    let mut limited: Vec<&str> = vec![crate::ratelimit::CREDENTIALS_ROUTE];
    for c in connectors.values() {
        limited.extend(c.info().connect_paths);
    }
    document_rate_limits(&mut doc, &limited);
    doc.to_json().unwrap_or_else(|_| "{}".to_owned())
}

/// Every operation of a rate-limited route (`crate::ratelimit`) may answer 429: say so, with the
/// `Retry-After` header and the error body.
fn document_rate_limits(doc: &mut utoipa::openapi::OpenApi, limited: &[&str]) {
    use utoipa::openapi::schema::{Object, Ref, Type};
    use utoipa::openapi::{Content, HeaderBuilder, RefOr, ResponseBuilder};
    let response = ResponseBuilder::new()
        .description(
            "`rate_limited`: this caller made the configured number of requests of this kind in \
             the current minute",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Object::with_type(Type::Integer))
                .description(Some("seconds until the window ends"))
                .build(),
        )
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build();
    for path in limited {
        let Some(item) = doc.paths.paths.get_mut(*path) else {
            continue;
        };
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            op.responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| RefOr::T(response.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_routes_document_429() {
        let mut doc = SharedApi::openapi();
        document_rate_limits(&mut doc, &[crate::ratelimit::CREDENTIALS_ROUTE, "/nowhere"]);
        let json: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
        let creds = &json["paths"][crate::ratelimit::CREDENTIALS_ROUTE]["get"]["responses"];
        assert!(
            creds["429"]["headers"]["Retry-After"].is_object(),
            "{creds}"
        );
        assert_eq!(
            creds["429"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        // A route without a limit says nothing of 429.
        assert!(json["paths"]["/api/connections"]["get"]["responses"]["429"].is_null());
    }
}
