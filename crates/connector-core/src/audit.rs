//! Audit actions: what an audit line records, typed, serialized as the strings the audit trail and
//! the API have always used.

use std::fmt;

/// An audited action. The core's own, the asynchronous setup's (any provider may run one), and a
/// provider's own actions as [`AuditAction::Plugin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A connection was stored for the first time.
    Connect,
    /// An existing connection was stored again (new credentials).
    Reconnect,
    /// A connection and its secret were removed.
    Disconnect,
    /// Credentials were handed out (counted per connection and mode).
    CredentialsIssued,
    /// A connection's status changed.
    StatusChanged,
    /// A connection's long-lived secret ends soon.
    ExpiryWarning,
    /// An asynchronous setup was queued.
    SetupQueued,
    /// The user chose the projects an asynchronous setup acts on.
    SetupProjectsSelected,
    /// An asynchronous setup finished.
    SetupCompleted,
    /// An asynchronous setup failed.
    SetupFailed,
    /// A provider's own action (`rotate_external_id`, `force_disconnect`, …): snake_case.
    Plugin(&'static str),
}

impl AuditAction {
    /// Every action the core names, in documentation order (not the plugins').
    pub const CORE: [AuditAction; 10] = [
        Self::Connect,
        Self::Reconnect,
        Self::Disconnect,
        Self::CredentialsIssued,
        Self::StatusChanged,
        Self::ExpiryWarning,
        Self::SetupQueued,
        Self::SetupProjectsSelected,
        Self::SetupCompleted,
        Self::SetupFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Reconnect => "reconnect",
            Self::Disconnect => "disconnect",
            Self::CredentialsIssued => "credentials_issued",
            Self::StatusChanged => "status_changed",
            Self::ExpiryWarning => "expiry_warning",
            Self::SetupQueued => "setup_queued",
            Self::SetupProjectsSelected => "setup_projects_selected",
            Self::SetupCompleted => "setup_completed",
            Self::SetupFailed => "setup_failed",
            Self::Plugin(name) => name,
        }
    }

    /// The core's action of that name (`None`: a plugin's own action, or no action).
    pub fn parse_core(s: &str) -> Option<Self> {
        Self::CORE.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_keep_their_strings_and_parse_back() {
        assert_eq!(
            AuditAction::CredentialsIssued.as_str(),
            "credentials_issued"
        );
        assert_eq!(
            serde_json::to_string(&AuditAction::Plugin("rotate_external_id")).unwrap(),
            "\"rotate_external_id\""
        );
        for a in AuditAction::CORE {
            assert_eq!(AuditAction::parse_core(a.as_str()), Some(a));
        }
        assert_eq!(AuditAction::parse_core("rotate_external_id"), None);
        let mut names: Vec<&str> = AuditAction::CORE.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditAction::CORE.len(), "distinct names");
    }
}
