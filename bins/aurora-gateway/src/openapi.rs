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
    ),
    components(schemas(
        connector_core::error::ErrorBody,
        connector_core::ConnectionView,
        connector_core::ProviderInfo,
        connector_core::DisconnectResponse,
        routes::AuditEventDoc,
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

/// Give each schema a plugin defines its provider's prefix (`scaleway.ConnectRequest`), and point the
/// plugin's references at the new names, so that the types of two plugins with one name both
/// survive the merge. A schema the shared part holds identically (a core type such as `ErrorBody`)
/// keeps its name.
fn qualify_schemas(own: &mut Value, provider: &str, shared: &Value) {
    let shared_schemas = shared.pointer("/components/schemas");
    let Some(schemas) = own
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut renames = HashMap::new();
    for (name, schema) in std::mem::take(schemas) {
        let core = shared_schemas.and_then(|s| s.get(&name)) == Some(&schema);
        if core {
            schemas.insert(name, schema);
        } else {
            let qualified = format!("{provider}.{name}");
            schemas.insert(qualified.clone(), schema);
            renames.insert(name, qualified);
        }
    }
    rename_refs(own, &renames);
}

fn rename_refs(v: &mut Value, renames: &HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(r) if k == "$ref" => {
                        let renamed = r
                            .strip_prefix(SCHEMA_REF)
                            .and_then(|name| renames.get(name));
                        if let Some(new) = renamed {
                            *r = format!("{SCHEMA_REF}{new}");
                        }
                    }
                    _ => rename_refs(x, renames),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_refs(x, renames)),
        _ => {}
    }
}

/// Add a plugin's paths, components and tags; what the document already holds is kept (two plugins
/// never mount one route: the registry and actix would not serve both either).
fn merge(doc: &mut Value, own: Value) {
    let Value::Object(own) = own else { return };
    for (key, value) in own {
        match key.as_str() {
            "paths" | "components" => {
                let Value::Object(groups) = value else {
                    continue;
                };
                let Some(target) = doc.as_object_mut().and_then(|d| object_entry(d, &key)) else {
                    continue;
                };
                for (group, items) in groups {
                    let Value::Object(items) = items else {
                        continue;
                    };
                    let Some(into) = object_entry(target, &group) else {
                        continue;
                    };
                    for (name, item) in items {
                        if into.contains_key(&name) {
                            tracing::warn!(%group, %name, "OpenAPI: documented twice; the first is kept");
                        } else {
                            into.insert(name, item);
                        }
                    }
                }
            }
            "tags" => {
                let Value::Array(tags) = value else { continue };
                let list = doc
                    .as_object_mut()
                    .map(|d| d.entry("tags").or_insert_with(|| json!([])));
                if let Some(Value::Array(list)) = list {
                    for tag in tags {
                        if !list.iter().any(|t| t.get("name") == tag.get("name")) {
                            list.push(tag);
                        }
                    }
                }
            }
            // `openapi`, `info`: the shared part's.
            _ => {}
        }
    }
}

/// The object at `m[key]`, created when missing (`None` if something else is there).
fn object_entry<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.entry(key).or_insert_with(|| json!({})).as_object_mut()
}

/// Call `f(path, operation)` for every operation of the document.
fn for_each_operation(doc: &mut Value, mut f: impl FnMut(&str, &mut Map<String, Value>)) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Some(op) = op.as_object_mut() {
                f(path, op);
            }
        }
    }
}

/// A response with the error body, unless the operation documents that status already.
fn add_error(op: &mut Map<String, Value>, status: &str, description: &str) {
    let Some(responses) = object_entry(op, "responses") else {
        return;
    };
    responses
        .entry(status)
        .or_insert_with(|| error_response(description));
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("{SCHEMA_REF}{ERROR_BODY}")}}},
    })
}

fn is_identity_header(param: &Value) -> bool {
    let named = |n: &str| {
        param
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(n))
    };
    param.get("in").and_then(Value::as_str) == Some("header")
        && (named(connector_core::http::USER_HEADER)
            || named(connector_core::http::INTERNAL_SECRET_HEADER))
}

/// §1 as security schemes: every route but the open ones needs `X-User-ID`, and `X-Internal-Secret`
/// when the gateway has one. An operation that declares its own requirement keeps it (the
/// credentials route always needs both). The identity headers are no longer parameters of their own.
/// Each guarded operation may answer 401.
fn document_identity(doc: &mut Value, open: &[&str]) {
    if let Some(d) = doc.as_object_mut() {
        if let Some(schemes) =
            object_entry(d, "components").and_then(|c| object_entry(c, "securitySchemes"))
        {
            schemes.insert(
                USER_SCHEME.to_owned(),
                json!({
                    "type": "apiKey",
                    "in": "header",
                    "name": connector_core::http::USER_HEADER,
                    "description": "The caller's user id: 1 to 128 characters of letters, digits \
                        and `_ . @ : -`, given once. Set by the trusted frontend or service.",
                }),
            );
            schemes.insert(
                SECRET_SCHEME.to_owned(),
                json!({
                    "type": "apiKey",
                    "in": "header",
                    "name": connector_core::http::INTERNAL_SECRET_HEADER,
                    "description": "The shared secret of the gateway's trusted callers \
                        (`AURORA_INTERNAL_SECRET`), given once. Needed on every guarded route when \
                        the gateway has one, and always on the credentials route.",
                }),
            );
        }
    }
    for_each_operation(doc, |path, op| {
        if let Some(Value::Array(params)) = op.get_mut("parameters") {
            params.retain(|p| !is_identity_header(p));
            if params.is_empty() {
                op.remove("parameters");
            }
        }
        if open.contains(&path) {
            return;
        }
        op.entry("security").or_insert_with(|| {
            json!([
                {USER_SCHEME: [], SECRET_SCHEME: []},
                {USER_SCHEME: []},
            ])
        });
        add_error(
            op,
            "401",
            "`unauthenticated`: `X-User-ID` missing, malformed or given twice, or \
             `X-Internal-Secret` missing, wrong or given twice where it is needed",
        );
    });
    // Path-level parameters too.
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            if let Some(Value::Array(params)) = item.get_mut("parameters") {
                params.retain(|p| !is_identity_header(p));
            }
        }
    }
}

/// Every operation that takes a body may answer, before its handler runs (`app::guard`): 400
/// (malformed), 408 (the body did not arrive within the deadline), 413 (above 64 KiB) and 415 (a
/// Content-Type that is not JSON, or a form where the route takes one). An operation with query
/// parameters may answer 400 (a malformed one).
fn document_body_answers(doc: &mut Value) {
    for_each_operation(doc, |_, op| {
        let has_query = op
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| {
                ps.iter()
                    .any(|p| p.get("in").and_then(Value::as_str) == Some("query"))
            });
        let body_types: Vec<String> = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        if has_query {
            add_error(op, "400", "`invalid_request`: a malformed query parameter");
        }
        if op.contains_key("requestBody") {
            add_error(op, "400", "`invalid_request`: the body is malformed");
            add_error(
                op,
                "408",
                "`request_timeout`: the body did not arrive within the gateway's deadline \
                 (`AURORA_BODY_TIMEOUT_SECS`)",
            );
            add_error(
                op,
                "413",
                "`payload_too_large`: the body is larger than 64 KiB",
            );
            let form = body_types
                .iter()
                .any(|t| t == "application/x-www-form-urlencoded");
            add_error(
                op,
                "415",
                if form {
                    "`unsupported_media_type`: a body whose Content-Type is neither JSON \
                     (`application/json`, `application/…+json`) nor \
                     `application/x-www-form-urlencoded`"
                } else {
                    "`unsupported_media_type`: a body whose Content-Type is not JSON \
                     (`application/json`, `application/…+json`)"
                },
            );
        }
    });
}

/// Every operation of a rate-limited route (`crate::ratelimit`) may answer 429: say so, with the
/// `Retry-After` header and the error body.
fn document_rate_limits(doc: &mut Value, limited: &[&str]) {
    let response = json!({
        "description": "`rate_limited`: this caller made the configured number of requests of this \
            kind in the current minute",
        "headers": {"Retry-After": {
            "description": "seconds until the window ends",
            "schema": {"type": "integer"},
        }},
        "content": {"application/json": {"schema": {"$ref": format!("{SCHEMA_REF}{ERROR_BODY}")}}},
    });
    for_each_operation(doc, |path, op| {
        if !limited.contains(&path) {
            return;
        }
        if let Some(responses) = object_entry(op, "responses") {
            responses.entry("429").or_insert_with(|| response.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};
    use std::sync::OnceLock;

    use connector_core::Settings;

    use super::*;
    use crate::config::GatewayConfig;

    /// The document a gateway on the embedded default serves, each plugin's own part, and the
    /// app's open paths.
    struct Served {
        doc: Value,
        plugins: Vec<(String, Value)>,
        open_paths: HashSet<String>,
    }

    fn served() -> &'static Served {
        static SERVED: OnceLock<Served> = OnceLock::new();
        SERVED.get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let rt = tokio::runtime::Runtime::new().expect("a runtime");
            rt.block_on(async {
                let settings = Settings::new().with(
                    "AURORA_DATA_DIR",
                    dir.path().to_str().expect("a UTF-8 temporary path"),
                );
                let cfg = GatewayConfig::from_settings(settings).expect("a configuration");
                let (platform, _) = crate::backends::build_platform(&cfg)
                    .await
                    .expect("the embedded backends");
                let connectors =
                    crate::registry::build_connectors(&platform).expect("the connectors");
                let plugins = connectors
                    .values()
                    .map(|c| (c.info().id.as_str().to_owned(), to_value(&c.openapi())))
                    .collect();
                let state = crate::app::AppState::new(platform, connectors, &cfg);
                let doc = serde_json::from_str(&state.openapi_json).expect("JSON");
                Served {
                    doc,
                    plugins,
                    open_paths: state.open_paths.clone(),
                }
            })
        })
    }

    /// `(path, method, operation)` of every operation.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                if METHODS.contains(&method.as_str()) {
                    out.push((path.clone(), method.clone(), op.clone()));
                }
            }
        }
        assert!(out.len() > 20, "{} operations", out.len());
        out
    }

    /// `v` with every schema reference replaced by the schema (bounded depth for recursive types).
    fn resolve(doc: &Value, v: &Value, depth: usize) -> Value {
        assert!(depth < 32, "schema references nest too deep");
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix(SCHEMA_REF).expect("a schema reference");
                    let target = &doc["components"]["schemas"][name];
                    assert!(!target.is_null(), "dangling reference {r}");
                    return resolve(doc, target, depth + 1);
                }
                Value::Object(
                    m.iter()
                        .map(|(k, x)| (k.clone(), resolve(doc, x, depth + 1)))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| resolve(doc, x, depth + 1)).collect()),
            other => other.clone(),
        }
    }

    fn template_variables(path: &str) -> BTreeSet<String> {
        path.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(v, _)| v.to_owned()))
            .collect()
    }

    fn params_in(op: &Value, place: &str) -> BTreeSet<String> {
        op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == place)
                    .map(|p| p["name"].as_str().expect("a name").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn every_path_variable_is_a_declared_required_path_parameter() {
        let doc = &served().doc;
        for (path, method, op) in operations(doc) {
            let declared = params_in(&op, "path");
            for var in template_variables(&path) {
                assert!(
                    declared.contains(&var),
                    "{method} {path} does not declare `{var}`"
                );
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    assert_eq!(p["required"], true, "{method} {path}: {p}");
                }
            }
        }
        let id = &doc["paths"]["/api/connections/{id}"]["get"]["parameters"][0];
        assert_eq!(id["name"], "id");
        assert_eq!(id["schema"]["format"], "uuid");
    }

    #[test]
    fn path_parameters_are_only_the_path_variables_and_queries_are_queries() {
        let doc = &served().doc;
        for (path, method, op) in operations(doc) {
            let declared = params_in(&op, "path");
            assert_eq!(declared, template_variables(&path), "{method} {path}");
        }
        let query = |path: &str| params_in(&doc["paths"][path]["get"], "query");
        assert_eq!(
            query("/api/connections"),
            BTreeSet::from(["provider".into()])
        );
        assert_eq!(
            query("/api/connections/{id}/credentials"),
            BTreeSet::from(["mode".into()])
        );
        assert_eq!(
            query("/api/audit"),
            BTreeSet::from(["connectionId".into(), "since".into(), "limit".into()])
        );
    }

    #[test]
    fn each_plugin_keeps_its_own_schemas() {
        let served = served();
        let doc = &served.doc;
        assert!(
            served.plugins.len() >= 5,
            "{} plugins",
            served.plugins.len()
        );
        for (provider, own) in &served.plugins {
            for (path, item) in own["paths"].as_object().expect("paths") {
                for (method, op) in item.as_object().expect("a path item") {
                    let merged = &doc["paths"][path][method];
                    assert!(
                        merged.is_object(),
                        "{method} {path} of {provider} is missing"
                    );
                    let body = resolve(own, &op["requestBody"], 0);
                    assert_eq!(
                        resolve(doc, &merged["requestBody"], 0),
                        body,
                        "{provider}: the body of {method} {path} is not its own"
                    );
                    for (status, response) in op["responses"].as_object().expect("responses") {
                        assert_eq!(
                            resolve(doc, &merged["responses"][status], 0),
                            resolve(own, response, 0),
                            "{provider}: the {status} of {method} {path} is not its own"
                        );
                    }
                }
            }
        }
        // The two collisions seen: Tailscale's connect body was Scaleway's, and GCP's login and
        // force-disconnect bodies were Azure's.
        let body = |path: &str| {
            resolve(
                doc,
                &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"],
                0,
            )
        };
        let tailscale = body("/tailscale_api/tailscale/connect");
        assert!(
            tailscale["properties"]["clientId"].is_object(),
            "{tailscale}"
        );
        assert!(
            tailscale["properties"]["accessKey"].is_null(),
            "{tailscale}"
        );
        for path in ["/gcp/login", "/api/gcp/force-disconnect"] {
            let gcp = body(path);
            assert!(gcp.to_string().contains("userId"), "{path}: {gcp}");
            assert!(!gcp.to_string().contains("tenantId"), "{path}: {gcp}");
        }
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in ["scaleway.ConnectRequest", "tailscale.ConnectRequest"] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        // Core types keep their one name.
        assert!(schemas.contains_key("ErrorBody"));
        assert!(!schemas.keys().any(|k| k.ends_with(".ErrorBody")));
    }

    #[test]
    fn audit_answers_an_array_of_audit_events() {
        let doc = &served().doc;
        let schema = resolve(
            doc,
            &doc["paths"]["/api/audit"]["get"]["responses"]["200"]["content"]["application/json"]
                ["schema"],
            0,
        );
        assert_eq!(schema["type"], "array", "{schema}");
        let documented: BTreeSet<String> = schema["items"]["properties"]
            .as_object()
            .expect("the properties of an audit event")
            .keys()
            .cloned()
            .collect();
        // What the route serializes.
        let event = connector_core::AuditEvent {
            id: uuid::Uuid::new_v4(),
            user_id: connector_core::UserId::parse("u").expect("a user id"),
            connection_id: None,
            provider: None,
            action: "connect".into(),
            actor: "user".into(),
            detail: json!({}),
            created_at: chrono::Utc::now(),
        };
        let served: BTreeSet<String> = serde_json::to_value(&event)
            .expect("JSON")
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(documented, served);
    }

    fn is_error_body(response: &Value) -> bool {
        response["content"]["application/json"]["schema"]["$ref"]
            == format!("{SCHEMA_REF}{ERROR_BODY}")
    }

    #[test]
    fn gateway_error_answers_are_documented() {
        let served = served();
        let mut guarded = 0;
        let mut with_body = 0;
        for (path, method, op) in operations(&served.doc) {
            let responses = &op["responses"];
            if !served.open_paths.contains(&path) {
                guarded += 1;
                assert!(
                    is_error_body(&responses["401"]),
                    "{method} {path}: {responses}"
                );
            }
            if op["requestBody"].is_object() {
                with_body += 1;
                for status in ["400", "408", "413", "415"] {
                    assert!(
                        is_error_body(&responses[status]),
                        "{method} {path} {status}: {responses}"
                    );
                }
            }
            if !params_in(&op, "query").is_empty() {
                assert!(is_error_body(&responses["400"]), "{method} {path}");
            }
        }
        assert!(
            guarded > 20 && with_body > 10,
            "{guarded} guarded, {with_body} with a body"
        );
    }

    #[test]
    fn identity_headers_are_security_schemes_on_every_guarded_operation() {
        let served = served();
        let doc = &served.doc;
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(
            schemes[USER_SCHEME],
            json!({"type": "apiKey", "in": "header", "name": "X-User-ID",
                   "description": schemes[USER_SCHEME]["description"]})
        );
        assert_eq!(schemes[SECRET_SCHEME]["type"], "apiKey");
        assert_eq!(schemes[SECRET_SCHEME]["in"], "header");
        assert_eq!(schemes[SECRET_SCHEME]["name"], "X-Internal-Secret");
        let mut open_documented = BTreeSet::new();
        for (path, method, op) in operations(doc) {
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(!is_identity_header(p), "{method} {path} declares {p}");
            }
            match op["security"].as_array() {
                None => {
                    open_documented.insert(path.clone());
                }
                Some(alternatives) => {
                    assert!(!alternatives.is_empty(), "{method} {path}");
                    for a in alternatives {
                        assert!(a[USER_SCHEME].is_array(), "{method} {path}: {a}");
                    }
                }
            }
        }
        // Exactly the app's open paths are documented without security.
        let open_served: BTreeSet<String> = served.open_paths.iter().cloned().collect();
        assert_eq!(open_documented, open_served);
        // The credentials route always needs the internal secret.
        assert_eq!(
            doc["paths"][crate::ratelimit::CREDENTIALS_ROUTE]["get"]["security"],
            json!([{USER_SCHEME: [], SECRET_SCHEME: []}])
        );
        assert_eq!(
            doc["paths"]["/api/connections"]["get"]["security"],
            json!([{USER_SCHEME: [], SECRET_SCHEME: []}, {USER_SCHEME: []}])
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = &served().doc;
        for (path, method, op) in operations(doc) {
            let resolved = resolve(doc, &op, 0).to_string();
            assert!(!resolved.contains("$ref"), "{method} {path}");
        }
    }

    #[test]
    fn rate_limited_routes_document_429() {
        let doc = &served().doc;
        let creds = &doc["paths"][crate::ratelimit::CREDENTIALS_ROUTE]["get"]["responses"];
        assert!(
            creds["429"]["headers"]["Retry-After"].is_object(),
            "{creds}"
        );
        assert!(is_error_body(&creds["429"]));
        // A route without a limit says nothing of 429.
        assert!(doc["paths"]["/api/connections"]["get"]["responses"]["429"].is_null());
    }
}
