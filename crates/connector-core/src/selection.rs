//! Project and subscription selection, one semantic for every provider that has one (Scaleway
//! projects, Azure subscriptions, GCP projects): a live list, a `{id: enabled}` map and a root.
//!
//! The map and the root are not secret. They live in the connection's metadata (keys
//! [`SELECTION_KEY`] and [`ROOT_KEY`]), so they are shared by everyone who sees the connection and
//! go with it. The rules (`docs/http-api.md` §9.2):
//! - an id missing from the map is **enabled**, so a project created later is enabled;
//! - the root is always enabled, and setting a root enables it;
//! - a save that would disable the root is refused, as a whole;
//! - saves ignore ids outside the list (it may have changed); a root outside the list is refused.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The metadata key of the `{id: enabled}` map.
pub const SELECTION_KEY: &str = "projectSelection";
/// The metadata key of the root id.
pub const ROOT_KEY: &str = "rootProjectId";
/// The metadata key of the last known project list (ids), written by the provider whenever it
/// lists them (connect, setup, a live listing). Its presence is what gives a connection's
/// credentials answer `rootProjectId` and `enabledProjectIds`, with no provider call.
pub const LIST_KEY: &str = "projectList";

/// The last known project list of `metadata` ([`LIST_KEY`]), if the provider wrote one.
pub fn known_list(metadata: &Value) -> Option<Vec<String>> {
    metadata.get(LIST_KEY).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// The fields §7's credentials answer gains for a connection with a selection (`rootProjectId`,
/// `enabledProjectIds`), read from its metadata alone; `None` for a connection without a list.
pub fn credentials_fields_of(metadata: &Value) -> Option<Map<String, Value>> {
    let list = known_list(metadata)?;
    let selection = Selection::from_metadata(metadata, None);
    Some(selection.credentials_fields(list.iter().map(String::as_str)))
}

/// The refusal of a save that would disable the root.
pub const ROOT_DISABLED_MESSAGE: &str =
    "The root project cannot be disabled; choose another root first";

/// A connection's selection, read from its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    enabled: BTreeMap<String, bool>,
    root: Option<String>,
}

impl Selection {
    /// The selection stored in `metadata`. `default_root` stands for a root never chosen (Scaleway's
    /// connect-time project, Azure's own subscription, GCP's default project).
    pub fn from_metadata(metadata: &Value, default_root: Option<&str>) -> Self {
        let enabled = metadata
            .get(SELECTION_KEY)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b)))
                    .collect()
            })
            .unwrap_or_default();
        let root = metadata
            .get(ROOT_KEY)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or(default_root.filter(|s| !s.is_empty()))
            .map(str::to_owned);
        Self { enabled, root }
    }

    /// Write the map, the root and the current `list` into `metadata` ([`Selection::write_to`] and
    /// [`LIST_KEY`]): what a provider does each time it learns the list.
    pub fn write_with_list(&self, metadata: &mut Value, list: &[String]) {
        self.write_to(metadata);
        if let Some(m) = metadata.as_object_mut() {
            m.insert(
                LIST_KEY.into(),
                Value::Array(list.iter().cloned().map(Value::String).collect()),
            );
        }
    }

    /// Write the map and the root into `metadata` (an object; anything else is replaced by one).
    pub fn write_to(&self, metadata: &mut Value) {
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Some(m) = metadata.as_object_mut() {
            let map = self
                .enabled
                .iter()
                .map(|(k, v)| (k.clone(), Value::Bool(*v)))
                .collect();
            m.insert(SELECTION_KEY.into(), Value::Object(map));
            match &self.root {
                Some(r) => m.insert(ROOT_KEY.into(), Value::String(r.clone())),
                None => m.remove(ROOT_KEY),
            };
        }
    }

    pub fn root(&self) -> Option<&str> {
        self.root.as_deref()
    }

    /// Whether `id` is enabled: the root always is, and an id missing from the map is.
    pub fn is_enabled(&self, id: &str) -> bool {
        self.root.as_deref() == Some(id) || self.enabled.get(id).copied().unwrap_or(true)
    }

    /// The enabled ids of `list`, in the list's order.
    pub fn enabled_ids<'a, I>(&self, list: I) -> Vec<String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        list.into_iter()
            .filter(|id| self.is_enabled(id))
            .map(str::to_owned)
            .collect()
    }

    /// Apply a save of `{id: enabled}` against the current `list`. Ids outside the list are ignored.
    /// A save that would disable the root changes nothing and is a `400 invalid_request`.
    pub fn save<I>(&mut self, list: &[String], changes: I) -> Result<(), ApiError>
    where
        I: IntoIterator<Item = (String, bool)>,
    {
        let changes: Vec<(String, bool)> = changes
            .into_iter()
            .filter(|(id, _)| list.iter().any(|l| l == id))
            .collect();
        if let Some(root) = &self.root {
            if changes.iter().any(|(id, on)| id == root && !on) {
                return Err(ApiError::invalid_request(ROOT_DISABLED_MESSAGE));
            }
        }
        self.enabled.extend(changes);
        Ok(())
    }

    /// Make `id` the root and enable it. An id outside `list` is a `400 invalid_request`.
    pub fn set_root(&mut self, list: &[String], id: &str) -> Result<(), ApiError> {
        if !list.iter().any(|l| l == id) {
            return Err(ApiError::invalid_request(format!(
                "{id} is not one of this connection's projects"
            )));
        }
        self.enabled.insert(id.to_owned(), true);
        self.root = Some(id.to_owned());
        Ok(())
    }

    /// After the list was replaced (a new GCP setup): keep the choices still listed, and a root that
    /// is gone falls back to `default_root`.
    pub fn retain_listed(&mut self, list: &[String], default_root: Option<&str>) {
        self.enabled.retain(|id, _| list.iter().any(|l| l == id));
        if !self.root.as_ref().is_some_and(|r| list.contains(r)) {
            self.root = default_root.filter(|s| !s.is_empty()).map(str::to_owned);
        }
    }

    /// The fields the credentials answer gains: `rootProjectId` and `enabledProjectIds`.
    pub fn credentials_fields<'a, I>(&self, list: I) -> Map<String, Value>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut m = Map::new();
        m.insert(
            "rootProjectId".into(),
            self.root.clone().map(Value::String).unwrap_or(Value::Null),
        );
        m.insert(
            "enabledProjectIds".into(),
            Value::Array(
                self.enabled_ids(list)
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_ids_are_enabled_and_the_root_always_is() {
        let meta = json!({SELECTION_KEY: {"a": false, "b": true, "r": false}});
        let s = Selection::from_metadata(&meta, Some("r"));
        assert!(!s.is_enabled("a"));
        assert!(s.is_enabled("b"));
        assert!(s.is_enabled("new"), "a project created later is enabled");
        assert!(
            s.is_enabled("r"),
            "the root is enabled whatever the map says"
        );
        assert_eq!(
            s.enabled_ids(["a", "b", "r", "new"]),
            list(&["b", "r", "new"])
        );
    }

    #[test]
    fn the_credentials_fields_come_from_the_stored_list() {
        assert_eq!(credentials_fields_of(&json!({"projectId": "p"})), None);
        let mut meta = json!({"other": 1});
        let mut s = Selection::from_metadata(&meta, Some("r"));
        let l = list(&["a", "b", "r"]);
        s.save(&l, [("a".into(), false)]).unwrap();
        s.write_with_list(&mut meta, &l);
        assert_eq!(meta["other"], 1, "other metadata stays");
        let f = credentials_fields_of(&meta).unwrap();
        assert_eq!(f["rootProjectId"], "r");
        assert_eq!(f["enabledProjectIds"], json!(["b", "r"]));
    }

    #[test]
    fn a_stored_root_wins_over_the_default() {
        let s = Selection::from_metadata(&json!({ROOT_KEY: "x"}), Some("d"));
        assert_eq!(s.root(), Some("x"));
        let s = Selection::from_metadata(&json!({ROOT_KEY: ""}), Some("d"));
        assert_eq!(s.root(), Some("d"));
        assert_eq!(Selection::from_metadata(&json!(null), None).root(), None);
    }

    #[test]
    fn saving_ignores_unlisted_ids_and_refuses_to_disable_the_root() {
        let l = list(&["a", "b", "r"]);
        let mut s = Selection::from_metadata(&json!({}), Some("r"));
        s.save(&l, [("a".into(), false), ("zz".into(), false)])
            .unwrap();
        assert!(!s.is_enabled("a"));
        assert!(s.is_enabled("zz"), "an unlisted id is not stored");
        let before = s.clone();
        let e = s
            .save(&l, [("b".into(), false), ("r".into(), false)])
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.code, "invalid_request");
        assert_eq!(e.message, ROOT_DISABLED_MESSAGE);
        assert_eq!(s, before, "a refused save changes nothing");
    }

    #[test]
    fn setting_a_root_enables_it_and_refuses_unlisted_ids() {
        let l = list(&["a", "b"]);
        let mut s = Selection::from_metadata(&json!({SELECTION_KEY: {"b": false}}), Some("a"));
        s.set_root(&l, "b").unwrap();
        assert_eq!(s.root(), Some("b"));
        assert!(s.is_enabled("b"));
        // The old root is an ordinary project again, enabled by default.
        s.save(&l, [("a".into(), false)]).unwrap();
        assert!(!s.is_enabled("a"));
        let e = s.set_root(&l, "c").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(s.root(), Some("b"));
    }

    #[test]
    fn metadata_round_trip_keeps_other_keys() {
        let l = list(&["a", "b"]);
        let mut s = Selection::from_metadata(&json!({}), Some("a"));
        s.save(&l, [("b".into(), false)]).unwrap();
        let mut meta = json!({"projectId": "a", "other": 1});
        s.write_to(&mut meta);
        assert_eq!(meta["other"], 1);
        assert_eq!(meta[SELECTION_KEY], json!({"b": false}));
        assert_eq!(meta[ROOT_KEY], "a");
        assert_eq!(Selection::from_metadata(&meta, None), s);
    }

    #[test]
    fn a_new_list_keeps_listed_choices_and_a_gone_root_falls_back() {
        let mut s = Selection::from_metadata(
            &json!({SELECTION_KEY: {"a": false, "gone": false}, ROOT_KEY: "old"}),
            None,
        );
        s.retain_listed(&list(&["a", "b"]), Some("b"));
        assert_eq!(s.root(), Some("b"));
        assert!(!s.is_enabled("a"));
        let mut meta = json!({});
        s.write_to(&mut meta);
        assert_eq!(meta[SELECTION_KEY], json!({"a": false}));
    }

    #[test]
    fn credentials_fields_name_the_root_and_the_enabled_ids() {
        let s = Selection::from_metadata(&json!({SELECTION_KEY: {"b": false}}), Some("a"));
        let f = s.credentials_fields(["a", "b", "c"]);
        assert_eq!(
            Value::Object(f),
            json!({"rootProjectId": "a", "enabledProjectIds": ["a", "c"]})
        );
    }
}
