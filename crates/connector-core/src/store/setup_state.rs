//! The lifecycle state of a setup task, as stored and as shown (§2).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The lifecycle state of a setup task (§2: `PENDING`, `STARTED`, `PROGRESS`, `SUCCESS`, `FAILURE`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SetupState {
    /// Queued; no worker has taken it yet.
    Pending,
    /// A worker took it; no step has started.
    Started,
    /// A step is running (or the task waits for a retry after a passing fault).
    Progress,
    /// Finished (also when it finished by asking the user to choose, see the task's `result`).
    Success,
    /// Finished with an error.
    Failure,
}

impl SetupState {
    pub const ALL: [SetupState; 5] = [
        Self::Pending,
        Self::Started,
        Self::Progress,
        Self::Success,
        Self::Failure,
    ];
    /// The states a worker may still claim.
    pub const LIVE: [SetupState; 3] = [Self::Pending, Self::Started, Self::Progress];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Started => "STARTED",
            Self::Progress => "PROGRESS",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
        }
    }

    /// `SUCCESS` or `FAILURE`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failure)
    }
}

impl FromStr for SetupState {
    type Err = crate::ids::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(crate::ids::ParseError("unknown setup task state"))
    }
}

impl fmt::Display for SetupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_state_round_trip() {
        for s in SetupState::ALL {
            assert_eq!(s.as_str().parse::<SetupState>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
            assert_eq!(s.is_terminal(), !SetupState::LIVE.contains(&s));
        }
        assert!("DONE".parse::<SetupState>().is_err());
    }
}
