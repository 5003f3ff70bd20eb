//! Merging a plugin's OpenAPI document into the gateway's: schema names qualified by provider, references renamed, paths and components joined.

use super::*;

/// Give each schema a plugin defines its provider's prefix (`scaleway.ConnectRequest`), and point the
/// plugin's references at the new names, so that the types of two plugins with one name both
/// survive the merge. A schema the shared part holds identically (a core type such as `ErrorBody`)
/// keeps its name.
pub(super) fn qualify_schemas(own: &mut Value, provider: &str, shared: &Value) {
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

pub(super) fn rename_refs(v: &mut Value, renames: &HashMap<String, String>) {
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
pub(super) fn merge(doc: &mut Value, own: Value) {
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
pub(super) fn object_entry<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.entry(key).or_insert_with(|| json!({})).as_object_mut()
}

/// Call `f(path, operation)` for every operation of the document.
pub(super) fn for_each_operation(
    doc: &mut Value,
    mut f: impl FnMut(&str, &mut Map<String, Value>),
) {
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
pub(super) fn add_error(op: &mut Map<String, Value>, status: &str, description: &str) {
    let Some(responses) = object_entry(op, "responses") else {
        return;
    };
    responses
        .entry(status)
        .or_insert_with(|| error_response(description));
}

pub(super) fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("{SCHEMA_REF}{ERROR_BODY}")}}},
    })
}
