//! The test dump: every row of every table as one line of text (`SqlStore::dump_text`), for tests
//! asserting that no secret reaches the database.

use std::fmt::Write as _;

use chrono::NaiveDateTime;

use crate::models::{AuditRow, ConnectionRow, OAuthRow, PluginValueRow, SetupTaskRow};

/// Renders rows as `table: col=value | col=value …` lines, values unescaped (so a test can look
/// for a raw string); binary is shown both as lossy UTF-8 and as hex.
pub(crate) struct Dump {
    out: String,
    first: bool,
}

impl Dump {
    pub fn new() -> Self {
        Self {
            out: String::new(),
            first: true,
        }
    }

    pub fn row(&mut self, table: &str) -> &mut Self {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(table);
        self.out.push(':');
        self.first = true;
        self
    }

    fn sep(&mut self, name: &str) {
        self.out.push_str(if self.first { " " } else { " | " });
        self.first = false;
        self.out.push_str(name);
        self.out.push('=');
    }

    pub fn s(&mut self, name: &str, v: &str) -> &mut Self {
        self.sep(name);
        self.out.push_str(v);
        self
    }

    pub fn o(&mut self, name: &str, v: Option<&str>) -> &mut Self {
        self.s(name, v.unwrap_or("NULL"))
    }

    pub fn d(&mut self, name: &str, v: impl std::fmt::Display) -> &mut Self {
        self.sep(name);
        let _ = write!(self.out, "{v}");
        self
    }

    pub fn t(&mut self, name: &str, v: Option<NaiveDateTime>) -> &mut Self {
        match v {
            Some(t) => self.d(name, t),
            None => self.s(name, "NULL"),
        }
    }

    pub fn b(&mut self, name: &str, v: &[u8]) -> &mut Self {
        self.sep(name);
        self.out.push_str(&String::from_utf8_lossy(v));
        self.out.push_str(" (hex ");
        for byte in v {
            let _ = write!(self.out, "{byte:02x}");
        }
        self.out.push(')');
        self
    }

    pub fn finish(self) -> String {
        self.out
    }

    pub fn connection(&mut self, r: &ConnectionRow) {
        self.row("user_connections")
            .s("id", &r.id)
            .s("user_id", &r.user_id)
            .s("provider", &r.provider)
            .s("account_id", &r.account_id)
            .o("display_name", r.display_name.as_deref())
            .s("status", &r.status)
            .o("status_reason", r.status_reason.as_deref())
            .d("read_only", r.read_only)
            .s("secret_ref", &r.secret_ref)
            .s("metadata", &r.metadata)
            .t("created_at", Some(r.created_at))
            .t("updated_at", Some(r.updated_at))
            .t("last_validated_at", r.last_validated_at)
            .t("expires_at", r.expires_at);
    }

    pub fn audit(&mut self, r: &AuditRow) {
        self.row("audit_events")
            .s("id", &r.id)
            .s("user_id", &r.user_id)
            .o("connection_id", r.connection_id.as_deref())
            .o("provider", r.provider.as_deref())
            .s("action", &r.action)
            .s("actor", &r.actor)
            .s("detail", &r.detail)
            .t("created_at", Some(r.created_at));
    }

    pub fn oauth(&mut self, r: &OAuthRow) {
        self.row("oauth_states")
            .s("state_hash", &r.state_hash)
            .s("user_id", &r.user_id)
            .s("provider", &r.provider)
            .b("sealed_verifier", &r.sealed_verifier)
            .s("redirect_uri", &r.redirect_uri)
            .t("created_at", Some(r.created_at))
            .t("expires_at", Some(r.expires_at));
    }

    pub fn plugin_value(&mut self, r: &PluginValueRow) {
        self.row("plugin_values")
            .s("provider", &r.provider)
            .s("user_id", &r.user_id)
            .s("name", &r.name)
            .s("value", &r.value)
            .t("created_at", Some(r.created_at))
            .t("updated_at", Some(r.updated_at));
    }

    pub fn setup_task(&mut self, r: &SetupTaskRow) {
        self.row("setup_tasks")
            .s("id", &r.id)
            .s("user_id", &r.user_id)
            .o("connection_id", r.connection_id.as_deref())
            .s("provider", &r.provider)
            .s("state", &r.state)
            .d("step", r.step)
            .d("total_steps", r.total_steps)
            .d("progress", r.progress)
            .s("status_message", &r.status_message)
            .o("error", r.error.as_deref())
            .o("result", r.result.as_deref())
            .s("input", &r.input)
            .d("attempts", r.attempts)
            .o("lease_owner", r.lease_owner.as_deref())
            .t("lease_expires_at", r.lease_expires_at)
            .t("created_at", Some(r.created_at))
            .t("updated_at", Some(r.updated_at));
    }
}
