//! Process limits at start: the soft `RLIMIT_NOFILE` is raised to the hard limit, and client
//! connections are capped below it, so held connections can never take the descriptors that the
//! database, Redis, the secret store and provider calls need.

/// Descriptors kept for everything but client connections: pools, outbound calls, files.
fn reserve(soft: u64) -> u64 {
    (soft / 4).clamp(16, 512)
}

/// What start-up decided, for the log line and for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// `RLIMIT_NOFILE` before and after the raise (soft, hard).
    pub before: (u64, u64),
    pub soft: u64,
    /// Client connections at once, all workers together.
    pub max_connections: usize,
}

/// The cap for a soft limit: the descriptors left after the reserve, halved, since a client
/// request can hold an outbound connection of its own (a provider call, a secret read).
pub fn max_connections_for(soft: u64) -> usize {
    let budget = soft.saturating_sub(reserve(soft)) / 2;
    usize::try_from(budget.max(8)).unwrap_or(usize::MAX)
}

/// Raise the soft descriptor limit to the hard one and derive the connection cap (`configured`
/// wins when set). Logs both limits and the cap.
pub fn apply(configured: Option<usize>) -> ConnectionBudget {
    let before = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    let soft = match rlimit::increase_nofile_limit(before.1) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the file-descriptor limit");
            before.0
        }
    };
    let derived = max_connections_for(soft);
    let max_connections = configured.unwrap_or(derived);
    if configured.is_some_and(|c| c > derived) {
        tracing::warn!(
            max_connections,
            derived,
            "AURORA_MAX_CONNECTIONS is above what the file-descriptor limit leaves for clients"
        );
    }
    tracing::info!(
        nofile_soft_before = before.0,
        nofile_hard = before.1,
        nofile_soft = soft,
        max_connections,
        "file descriptors: soft limit raised to the hard limit; client connections capped"
    );
    ConnectionBudget {
        before,
        soft,
        max_connections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_limit() {
        for soft in [64u64, 256, 1024, 4096, 65_536, 1 << 20] {
            let cap = max_connections_for(soft) as u64;
            assert!(cap * 2 + 16 <= soft.max(32), "soft {soft}: cap {cap}");
            assert!(cap >= 8);
        }
        assert_eq!(max_connections_for(1024), 384);
    }
}
