//! Connect and disconnect: the secret and the row written or removed together, with rollback and one invalidation.

use super::*;

impl Platform {
    /// Store a connection whose credentials the provider accepted: the secret first, then the row.
    /// If the row cannot be written the secret is removed again (or, on a reconnect, the previous
    /// secret is put back), so a failed connect leaves nothing half-written.
    pub async fn connect(
        &self,
        spec: ConnectSpec,
        actor: Actor,
    ) -> Result<(ConnectionRecord, bool), ApiError> {
        let existing = self
            .store
            .find_connection(&spec.user, &spec.provider, &spec.account_id)
            .await?;
        let id = existing.as_ref().map(|c| c.id).unwrap_or_default();
        let path = match &existing {
            Some(c) => SecretPath::from_stored(&c.secret_ref)?,
            None => SecretPath::connection(&spec.user, &spec.provider, id),
        };
        let previous = match &existing {
            Some(_) => self.secrets.get(&path).await?,
            None => None,
        };
        self.secrets.put(&path, &spec.secret).await?;
        let now = Utc::now();
        let row = NewConnection {
            id,
            user_id: spec.user.clone(),
            provider: spec.provider.clone(),
            account_id: spec.account_id.clone(),
            display_name: spec.display_name,
            status: spec.status,
            status_reason: None,
            read_only: spec.read_only,
            secret_ref: path.as_str().to_owned(),
            metadata: spec.metadata,
            last_validated_at: Some(now),
            expires_at: spec.expires_at,
        };
        let (record, created) = match self.store.upsert_connection(row).await {
            Ok(r) => r,
            Err(e) => {
                let undo = match previous {
                    Some(prev) => self.secrets.put(&path, &prev).await,
                    None => self.secrets.delete(&path).await,
                };
                if let Err(undo_err) = undo {
                    tracing::error!(error = %undo_err, path = %path, "could not roll back the secret of a failed connect");
                }
                if existing.is_some() {
                    // The write may have been applied, and credentials may have been issued from
                    // the secret that was just rolled back. (A new id is known to nobody yet.)
                    self.broker.evict(id).await;
                }
                return Err(e.into());
            }
        };
        if record.secret_ref != path.as_str() {
            // Another connect of the same account won the race to insert the row (a double click, a
            // client retry): the row keeps its own secret path, so this connect's secret moves
            // there (its credentials are the latest) and the copy under its own path goes. A crash
            // in between leaves a secret no row references, which the reconciler removes.
            self.move_secret(&path, &record, &spec.secret).await?;
        }
        // The one invalidation of this connect, after the row write: the row and its credentials.
        self.broker.evict(record.id).await;
        self.audit(
            &record.user_id,
            Some(&record),
            if created {
                crate::AuditAction::Connect
            } else {
                crate::AuditAction::Reconnect
            },
            actor,
            serde_json::json!({"accountId": record.account_id, "previousStatus": existing.as_ref().map(|c| c.status)}),
        )
        .await;
        tracing::info!(connection = %record.id, provider = %record.provider, created, "connection stored");
        Ok((record, created))
    }

    /// Put `secret` under the row's own secret path and delete the copy at `ours`.
    pub(super) async fn move_secret(
        &self,
        ours: &SecretPath,
        record: &ConnectionRecord,
        secret: &SecretValue,
    ) -> Result<(), ApiError> {
        let theirs = SecretPath::from_stored(&record.secret_ref)?;
        tracing::info!(connection = %record.id, "a concurrent connect stored this account first; its secret path is kept");
        let put = self.secrets.put(&theirs, secret).await;
        // Ours goes whatever the put did: no row will ever point at it.
        if let Err(e) = self.secrets.delete(ours).await {
            tracing::warn!(error = %e, path = %ours, "could not delete the secret of a connect that lost the race; the reconciler will");
        }
        put?;
        Ok(())
    }

    /// The connection's stored secret.
    pub async fn load_secret(
        &self,
        conn: &ConnectionRecord,
    ) -> Result<Option<SecretValue>, ApiError> {
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        Ok(self.secrets.get(&path).await?)
    }

    /// Remove one connection: revoke at the provider (best effort), delete the secret, evict the cache,
    /// delete the row, audit. A secret-store failure stops before the row is deleted, so a retry can
    /// finish the job and no secret is orphaned.
    pub async fn disconnect(
        &self,
        connector: &dyn Connector,
        conn: &ConnectionRecord,
        actor: Actor,
    ) -> Result<(), ApiError> {
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        if let Some(secret) = self.secrets.get(&path).await? {
            let started = std::time::Instant::now();
            let res = connector.revoke(conn, &secret).await;
            let outcome = if res.is_ok() { "ok" } else { "error" };
            self.metrics.provider_call(
                conn.provider.as_str(),
                "revoke",
                outcome,
                started.elapsed(),
            );
            if let Err(e) = res {
                tracing::warn!(connection = %conn.id, error = %e, "provider-side revoke failed; removing our side anyway");
            }
        }
        self.secrets.delete(&path).await?;
        let deleted = self.store.delete_connection(&conn.user_id, conn.id).await;
        // The one invalidation of this disconnect, after the row write (whatever its result: it may
        // have been applied), so no replica keeps the row read before it.
        self.broker.evict(conn.id).await;
        deleted?;
        self.audit(
            &conn.user_id,
            Some(conn),
            crate::AuditAction::Disconnect,
            actor,
            serde_json::json!({"accountId": conn.account_id}),
        )
        .await;
        Ok(())
    }

    /// Disconnect every connection of `user` with this connector's provider; returns how many.
    pub async fn disconnect_all(
        &self,
        connector: &dyn Connector,
        user: &UserId,
        actor: Actor,
    ) -> Result<usize, ApiError> {
        let provider = connector.info().id;
        let conns = self.store.list_connections(user, Some(&provider)).await?;
        let mut n = 0;
        for c in &conns {
            self.disconnect(connector, c, actor).await?;
            n += 1;
        }
        Ok(n)
    }
}
