//! Tests of the merged OpenAPI document.

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
            let connectors = crate::registry::build_connectors(&platform).expect("the connectors");
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
    response["content"]["application/json"]["schema"]["$ref"] == format!("{SCHEMA_REF}{ERROR_BODY}")
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
