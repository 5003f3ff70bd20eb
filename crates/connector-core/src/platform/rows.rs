//! The platform's connection rows: status and metadata writes (one invalidation each) and the reads that check ownership.

use super::*;

impl Platform {
    /// Write a connection's status, then tell every replica once
    /// ([`CredentialBroker::row_changed`]), whatever the write's result (a write that failed may
    /// still have been applied). The cached credentials stay: a status is not a credential change.
    /// `None` when `user` has no such connection.
    pub async fn update_status(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self.store.update_status(user, id, update).await;
        self.broker.row_changed(id).await;
        res
    }

    /// [`Platform::update_status`] for a provider that refused the credentials: the cached
    /// credentials are dropped as well, here and in the shared cache, with the one invalidation
    /// after the write ([`CredentialBroker::evict`]).
    pub async fn update_status_and_evict(
        &self,
        user: &UserId,
        id: ConnectionId,
        update: StatusUpdate,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self.store.update_status(user, id, update).await;
        self.broker.evict(id).await;
        res
    }

    /// Write a connection's metadata and expiry, then tell every replica once
    /// ([`CredentialBroker::row_changed`]), whatever the write's result. `None` when `user` has no
    /// such connection.
    pub async fn update_metadata(
        &self,
        user: &UserId,
        id: ConnectionId,
        metadata: serde_json::Value,
        expires_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let res = self
            .store
            .update_metadata(user, id, metadata, expires_at)
            .await;
        self.broker.row_changed(id).await;
        res
    }

    /// A connection of `user`, or 404 (also when it belongs to someone else).
    pub async fn owned_connection(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<ConnectionRecord, ApiError> {
        self.store
            .get_connection(user, id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such connection"))
    }

    /// A connection of `user` for the credentials route: from the in-process tier when it holds the
    /// row (kept current on every replica by the platform's row writes), else from the
    /// store, then kept. 404 as [`Platform::owned_connection`].
    pub async fn connection_for_use(
        &self,
        user: &UserId,
        id: ConnectionId,
    ) -> Result<Arc<ConnectionRecord>, ApiError> {
        if let Some(row) = self.broker.local_row(id) {
            return if &row.user_id == user {
                Ok(row)
            } else {
                Err(ApiError::not_found("no such connection"))
            };
        }
        let generation = self.broker.local_generation();
        let row = Arc::new(self.owned_connection(user, id).await?);
        self.broker.keep_row(&row, generation);
        Ok(row)
    }

    /// A connection of `user` with this provider, or 404 ("no such {what} connection") — also for another
    /// user's connection or another provider's.
    pub async fn owned_connection_of(
        &self,
        user: &UserId,
        id: ConnectionId,
        provider: &ProviderId,
        what: &str,
    ) -> Result<ConnectionRecord, ApiError> {
        let conn = self.owned_connection(user, id).await?;
        if &conn.provider != provider {
            return Err(ApiError::not_found(format!("no such {what} connection")));
        }
        Ok(conn)
    }

    /// The connection named by `id`, else the user's most recently updated one of this provider;
    /// 404 with `none_message` when there is none.
    pub async fn pick_connection(
        &self,
        user: &UserId,
        id: Option<ConnectionId>,
        provider: &ProviderId,
        what: &str,
        none_message: &str,
    ) -> Result<ConnectionRecord, ApiError> {
        if let Some(id) = id {
            return self.owned_connection_of(user, id, provider, what).await;
        }
        self.store
            .list_connections(user, Some(provider))
            .await?
            .into_iter()
            .max_by_key(|c| c.updated_at)
            .ok_or_else(|| ApiError::not_found(none_message))
    }
}
