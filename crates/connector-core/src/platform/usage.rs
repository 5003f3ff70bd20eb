//! Using a connection: validation (gated per connection), status changes, short-lived credentials and the audit trail.

use super::*;

impl Platform {
    /// Check a connection live and record the outcome in its status.
    pub async fn validate(
        &self,
        connector: &dyn Connector,
        conn: &ConnectionRecord,
        actor: Actor,
    ) -> Result<ConnectionRecord, ApiError> {
        self.validate_gated(connector, conn, actor, None).await
    }

    /// [`Platform::validate`], with the provider call (only it) holding a permit of `gate`: the
    /// status checker bounds provider calls at once without idling a permit during the secret read
    /// and the status writes.
    pub async fn validate_gated(
        &self,
        connector: &dyn Connector,
        conn: &ConnectionRecord,
        actor: Actor,
        gate: Option<&tokio::sync::Semaphore>,
    ) -> Result<ConnectionRecord, ApiError> {
        let Some(secret) = self.load_secret(conn).await? else {
            return self
                .set_status(
                    conn,
                    ConnectionStatus::NeedsReconnect,
                    Some("the stored credentials are missing; reconnect the account".into()),
                    actor,
                    false,
                )
                .await;
        };
        let permit = match gate {
            Some(g) => g.acquire().await.ok(),
            None => None,
        };
        let started = std::time::Instant::now();
        let res = connector.validate(conn, &secret).await;
        drop(permit);
        let outcome = if res.is_ok() { "ok" } else { "error" };
        self.metrics.provider_call(
            conn.provider.as_str(),
            "validate",
            outcome,
            started.elapsed(),
        );
        match res {
            Ok(v) => {
                let mut conn = conn.clone();
                if v.metadata.is_some() || v.expires_at.is_some() {
                    let meta = v.metadata.unwrap_or_else(|| conn.metadata.clone());
                    let exp = v.expires_at.or(conn.expires_at);
                    if let Some(c) = self
                        .update_metadata(&conn.user_id, conn.id, meta, exp)
                        .await?
                    {
                        conn = c;
                    }
                }
                self.set_status(&conn, ConnectionStatus::Active, None, actor, false)
                    .await
            }
            Err(e) => {
                let status = match &e {
                    ConnectorError::CredentialsRejected(_) => ConnectionStatus::NeedsReconnect,
                    _ => ConnectionStatus::Degraded,
                };
                // Refused credentials are dropped with the status write's one invalidation.
                let evict = status == ConnectionStatus::NeedsReconnect;
                self.set_status(conn, status, Some(e.to_string()), actor, evict)
                    .await
            }
        }
    }

    /// Write the status (dropping the cached credentials too when `evict`) and audit a change.
    pub(super) async fn set_status(
        &self,
        conn: &ConnectionRecord,
        status: ConnectionStatus,
        reason: Option<String>,
        actor: Actor,
        evict: bool,
    ) -> Result<ConnectionRecord, ApiError> {
        let update = StatusUpdate {
            status,
            status_reason: reason.clone(),
            last_validated_at: Some(Utc::now()),
        };
        let written = if evict {
            self.update_status_and_evict(&conn.user_id, conn.id, update)
                .await
        } else {
            self.update_status(&conn.user_id, conn.id, update).await
        };
        let updated = written?.ok_or_else(|| ApiError::not_found("no such connection"))?;
        if conn.status != status {
            self.audit(
                &conn.user_id,
                Some(conn),
                crate::AuditAction::StatusChanged,
                actor,
                serde_json::json!({"from": conn.status, "to": status, "reason": reason}),
            )
            .await;
        }
        Ok(updated)
    }

    /// Credentials for an internal caller, through the cache and the single-flight refresh.
    pub async fn credentials(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
    ) -> Result<Arc<Credentials>, ApiError> {
        if conn.status == ConnectionStatus::NeedsReconnect {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                crate::error::ErrorCode::NeedsReconnect,
                "the provider refused this connection's credentials; reconnect the account",
            ));
        }
        if conn.status == ConnectionStatus::Pending {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                crate::error::ErrorCode::Conflict,
                "the connection's setup has not finished yet",
            ));
        }
        let res = self.broker.get(connector, conn, mode).await;
        if res.is_ok() {
            // Every issue is audited; on this hot path issues are counted in process and written
            // in a batch (no webhook maps to them, so the outbox is not involved).
            self.audit_buffer.push_issue(conn, mode);
        }
        if let Ok(creds) = &res {
            // Noted for the lifecycle scheduler, which refreshes credentials used lately just as
            // they enter the broker's refresh margin (a second in), before a caller has to wait.
            let now = Utc::now();
            let margin = chrono::Duration::from_std(crate::broker::REFRESH_MARGIN)
                .unwrap_or_default()
                - chrono::Duration::seconds(1);
            let refresh_at = creds.expires_at.map(|e| e - margin).filter(|r| *r > now);
            if let Err(e) = self
                .store
                .record_credential_use(conn.id, mode, now, refresh_at)
                .await
            {
                tracing::warn!(error = %e, connection = %conn.id, "could not record credential use");
            }
        }
        res
    }

    /// Append to the audit trail. A failure is logged, never fatal: the action already happened.
    pub async fn audit(
        &self,
        user: &UserId,
        conn: Option<&ConnectionRecord>,
        action: crate::audit::AuditAction,
        actor: Actor,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            id: uuid::Uuid::new_v4(),
            user_id: user.clone(),
            connection_id: conn.map(|c| c.id),
            provider: conn.map(|c| c.provider.clone()),
            action: action.as_str().to_owned(),
            actor: actor.as_str().to_owned(),
            detail,
            created_at: Utc::now(),
        };
        // With webhooks on, an action that maps to an event enqueues it in the audit's transaction.
        let outbox = crate::outbox::webhooks_enabled(&self.settings)
            .then(|| crate::outbox::event_for_audit(&event, conn))
            .flatten();
        if let Err(e) = self.store.append_audit_and_outbox(event, outbox).await {
            tracing::error!(error = %e, action = action.as_str(), "could not write the audit trail");
        }
    }
}
