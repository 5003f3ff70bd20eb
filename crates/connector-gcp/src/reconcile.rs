//! The GCP part of the reconciler ([`connector_core::Connector::reconcile`]): connections that a
//! crash left `pending` with no setup task to finish them.
//!
//! The callback writes the connection (`pending`, its future task id in `metadata.setupTaskId`) and
//! then queues the task; a process killed in between leaves a connection that nothing moves on and
//! that answers `409` on use, for ever. The same holds when a task ended but the write that should
//! have moved the connection on did not happen (a crash inside the failure path). Once such a
//! connection was last written more than `AURORA_GCP_RECONCILE_GRACE_SECS` ago (so a callback still
//! between its two writes is left alone), with no live task naming it:
//!
//! - **no task at all** (the callback died before queuing it) and the grant is in the secret store:
//!   the task is queued again, under the id the connection already names. Everything the setup needs
//!   is at hand (the row, the account, the refresh token), every step is idempotent, and step 1
//!   checks the grant with Google, so a revoked one still ends in `needs_reconnect`;
//! - **no task and no grant**: the connection becomes `needs_reconnect` ("connect again");
//! - **the task ended** (`FAILURE`, or a `SUCCESS` that is not a project choice): the connection
//!   becomes `needs_reconnect` with the task's reason. Not `degraded`: a `degraded` connection is
//!   live-checked, and a passing check would make `active` a connection whose setup never finished;
//! - **the task ended asking the user to choose projects** (`needs_selection`): left alone, that
//!   connection waits for `POST /gcp/post-auth-retry`.
//!
//! Each repair is logged (WARN, connection and task ids only) and counted in the number returned
//! (the core's reconciler adds it to `aurora_reconciler_repairs_total{kind="plugin"}`).

use chrono::Utc;
use connector_core::store::{SetupState, SetupTaskRecord};
use connector_core::{
    Actor, ApiError, ConnectionRecord, ConnectionStatus, ConnectorError, StatusUpdate, StoreError,
};

use crate::setup::{self, Checkpoint};
use crate::GcpConnector;

/// Connections read per page.
const PAGE: i64 = 100;
/// At most this many candidates per sweep (the next sweep goes on).
const MAX_PER_SWEEP: usize = 1000;

fn store_error(e: StoreError) -> ConnectorError {
    ConnectorError::Api(ApiError::from(e))
}

/// The task ended by asking the user to choose projects.
fn awaits_selection(t: &SetupTaskRecord) -> bool {
    t.state == SetupState::Success
        && t.result
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(|s| s.as_str())
            == Some("needs_selection")
}

impl GcpConnector {
    /// One sweep: repair every stale `pending` GCP connection that no live task names. Returns how
    /// many were repaired. Without the OAuth client nothing is done (no worker would run a task).
    pub(crate) async fn reconcile_pending(&self) -> Result<u64, ConnectorError> {
        if self.cfg.client.is_none() {
            return Ok(0);
        }
        let grace = chrono::Duration::from_std(self.cfg.reconcile_grace).unwrap_or_default();
        let cutoff = Utc::now() - grace;
        let store = self.platform.store();
        let mut after = None;
        let mut seen = 0usize;
        let mut repaired = 0u64;
        loop {
            let page = store
                .pending_without_live_task(&self.provider, cutoff, after, PAGE)
                .await
                .map_err(store_error)?;
            let n = page.len();
            for conn in page {
                after = Some(conn.id);
                seen += 1;
                let id = conn.id;
                match self.repair_pending(conn).await {
                    Ok(true) => repaired += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(connection = %id, error = %e, "GCP reconciler: could not repair a pending connection; the next sweep tries again")
                    }
                }
            }
            if (n as i64) < PAGE || seen >= MAX_PER_SWEEP {
                break;
            }
        }
        Ok(repaired)
    }

    /// Repair one candidate; `false` when it turned out to need nothing.
    async fn repair_pending(&self, conn: ConnectionRecord) -> Result<bool, ConnectorError> {
        let store = self.platform.store();
        let named = conn
            .metadata
            .get("setupTaskId")
            .and_then(|v| v.as_str())
            .and_then(|s| uuid::Uuid::parse_str(s).ok());
        let task = match named {
            Some(id) => store
                .get_setup_task(&conn.user_id, id)
                .await
                .map_err(store_error)?
                .filter(|t| t.connection_id == Some(conn.id)),
            None => None,
        };
        if let Some(t) = &task {
            if !t.state.is_terminal() || awaits_selection(t) {
                return Ok(false);
            }
        }
        // Read the row again right before acting: a reconnect or the setup may have moved it.
        let Some(current) = store
            .get_connection(&conn.user_id, conn.id)
            .await
            .map_err(store_error)?
        else {
            return Ok(false);
        };
        if current.status != ConnectionStatus::Pending || current.updated_at != conn.updated_at {
            return Ok(false);
        }
        if let Some(t) = task {
            let why = t.error.as_deref().unwrap_or(&t.status_message);
            tracing::warn!(connection = %current.id, task = %t.id, state = %t.state, "GCP reconciler: the setup task ended but the connection was left pending; it needs a reconnect");
            let reason = format!(
                "the Google Cloud setup ended without finishing the connection ({why}); connect the \
                 Google account again"
            );
            return self.fail_pending(&current, &reason, Some(t.id)).await;
        }
        let secret = self
            .platform
            .load_secret(&current)
            .await
            .map_err(ConnectorError::Api)?;
        if secret.is_none() {
            tracing::warn!(connection = %current.id, "GCP reconciler: a pending connection has neither setup task nor stored grant; it needs a reconnect");
            return self
                .fail_pending(
                    &current,
                    "the Google sign-in was interrupted before it finished; connect the Google \
                     account again",
                    None,
                )
                .await;
        }
        drop(secret);
        self.requeue_setup(&current, named).await
    }

    /// Queue the setup task the callback did not get to queue.
    async fn requeue_setup(
        &self,
        conn: &ConnectionRecord,
        named: Option<uuid::Uuid>,
    ) -> Result<bool, ConnectorError> {
        let store = self.platform.store();
        let task_id = match named {
            Some(id) => id,
            None => {
                // The connection names no task: give it one, as the callback does.
                let id = uuid::Uuid::new_v4();
                let mut metadata = match &conn.metadata {
                    serde_json::Value::Object(m) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                metadata.insert("setupTaskId".into(), id.to_string().into());
                if self
                    .platform
                    .update_metadata(
                        &conn.user_id,
                        conn.id,
                        serde_json::Value::Object(metadata),
                        conn.expires_at,
                    )
                    .await
                    .map_err(store_error)?
                    .is_none()
                {
                    return Ok(false);
                }
                id
            }
        };
        let sub = conn.metadata.get("sub").and_then(|v| v.as_str());
        let cp = Checkpoint::new(conn.id, &conn.account_id, sub);
        let task = setup::new_task(
            &conn.user_id,
            &cp,
            task_id,
            0,
            "Queued again: the sign-in was interrupted before the setup started",
        );
        match store.create_setup_task(task).await {
            Ok(_) => {}
            // Queued meanwhile (the callback was only slow): nothing to repair.
            Err(StoreError::Conflict(_)) => return Ok(false),
            Err(e) => return Err(store_error(e)),
        }
        tracing::warn!(connection = %conn.id, task = %task_id, "GCP reconciler: a pending connection had no setup task; its setup was queued again");
        self.platform
            .audit(
                &conn.user_id,
                Some(conn),
                connector_core::AuditAction::SetupQueued,
                Actor::System,
                serde_json::json!({"taskId": task_id, "repaired": true}),
            )
            .await;
        Ok(true)
    }

    /// The connection becomes `needs_reconnect` with `reason`.
    async fn fail_pending(
        &self,
        conn: &ConnectionRecord,
        reason: &str,
        task: Option<uuid::Uuid>,
    ) -> Result<bool, ConnectorError> {
        let update = StatusUpdate {
            status: ConnectionStatus::NeedsReconnect,
            status_reason: Some(reason.to_owned()),
            last_validated_at: None,
        };
        // The cached credentials go with the status write's one invalidation.
        let Some(updated) = self
            .platform
            .update_status_and_evict(&conn.user_id, conn.id, update)
            .await
            .map_err(store_error)?
        else {
            return Ok(false);
        };
        self.platform
            .audit(
                &conn.user_id,
                Some(&updated),
                connector_core::AuditAction::StatusChanged,
                Actor::System,
                serde_json::json!({
                    "from": conn.status,
                    "to": ConnectionStatus::NeedsReconnect,
                    "reason": reason,
                    "taskId": task,
                    "repaired": true,
                }),
            )
            .await;
        Ok(true)
    }
}
