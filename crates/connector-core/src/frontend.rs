//! What Aurora's own frontend shows of a connected connection (docs/http-api.md §9.1, C1–C3): each
//! provider describes its connections through [`crate::Connector::frontend_summary`], and the gateway
//! builds the listing routes from these descriptions without knowing any provider's metadata.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::connector::ProviderInfo;
use crate::store::ConnectionRecord;

/// One connected connection as the frontend's listings show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontendSummary {
    /// C1 `accounts.<provider>`, without `isConnected` (the gateway adds it): `name`, `displayText`
    /// and the provider's own fields.
    pub account: Map<String, Value>,
    /// C2 `connectors.<provider>`, without `connected`: `authType`, `tailnet`, `canExecute`, …
    pub status: Map<String, Value>,
    /// C3: one entry of `GET /user_tokens`.
    pub token: UserToken,
}

/// An entry of `GET /user_tokens` (C3). Never a secret: identifiers and names only; unfilled fields
/// are `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserToken {
    pub provider: String,
    pub subscription_id: Option<String>,
    pub subscription_name: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub email: Option<String>,
}

impl FrontendSummary {
    /// What a provider that says nothing more shows: its display name, and the account id as the
    /// text under it (C1) and as `subscription_id` (C3).
    pub fn generic(info: &ProviderInfo, conn: &ConnectionRecord) -> Self {
        let mut s = Self::named(info, &info.display_name, &conn.account_id);
        s.token.subscription_id = Some(conn.account_id.clone());
        s
    }

    /// A summary with C1's `name` and `displayText`, and C3's `provider`; the rest empty.
    pub fn named(info: &ProviderInfo, name: &str, text: &str) -> Self {
        let mut account = Map::new();
        account.insert("name".into(), Value::from(name));
        account.insert("displayText".into(), Value::from(text));
        Self {
            account,
            status: Map::new(),
            token: UserToken {
                provider: info.id.to_string(),
                ..UserToken::default()
            },
        }
    }

    /// Set a C1 field.
    pub fn account_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.account.insert(key.into(), value.into());
        self
    }

    /// Set a C2 field.
    pub fn status_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.status.insert(key.into(), value.into());
        self
    }
}

/// A string field of a connection's metadata.
pub fn meta_str<'a>(conn: &'a ConnectionRecord, key: &str) -> Option<&'a str> {
    conn.metadata
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}
