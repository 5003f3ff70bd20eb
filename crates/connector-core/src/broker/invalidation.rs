//! Eviction and the invalidation channel that tells every replica to drop its in-process copies.

use super::*;

impl CredentialBroker {
    /// Drop every cached credential of a connection (disconnect, reconnect, refusal): in this
    /// process, in the shared cache, and, through the invalidation channel, in every replica's
    /// in-process tier.
    pub async fn evict(&self, id: ConnectionId) {
        self.local.evict(id);
        for mode in [CredentialMode::ReadOnly, CredentialMode::Full] {
            let key = cache_key(id, mode);
            for k in [handoff_key(&key), key] {
                if let Err(e) = self.cache.delete(&k).await {
                    tracing::warn!(error = %e, connection = %id, "could not evict cached credentials");
                }
            }
        }
        self.tell_replicas(id).await;
    }

    /// Publish `id` on the invalidation channel, so every replica drops its in-process copies.
    /// With the in-process cache there is nobody else to tell.
    async fn tell_replicas(&self, id: ConnectionId) {
        if !self.cache.is_shared() {
            return;
        }
        if let Err(e) = self
            .cache
            .publish(INVALIDATION_CHANNEL, id.to_string().as_bytes())
            .await
        {
            tracing::warn!(
                error = %e,
                connection = %id,
                "could not tell the other replicas to drop their copies; they stop using them when \
                 they lose the channel or within the in-process ttl"
            );
        }
    }

    /// Whether this process holds an in-process copy of the connection's credentials (tests,
    /// diagnostics).
    pub fn holds_local_copy(&self, id: ConnectionId) -> bool {
        let entries = self.local.entries.lock();
        [CredentialMode::ReadOnly, CredentialMode::Full]
            .iter()
            .any(|m| entries.contains_key(&(id, *m)))
    }

    /// Whether the in-process tier is in use (enabled and hearing invalidations).
    pub fn local_tier_active(&self) -> bool {
        self.local.enabled()
    }

    /// A connection's row changed (status, metadata, reconnect) or went away: drop this process's
    /// copies of it (the row and its decrypted credentials) and tell every replica to do the same.
    /// The shared cache's entries stay (a status or metadata change does not change credentials;
    /// [`CredentialBroker::evict`] is for that). Called by the [`crate::Platform`] methods that
    /// write a connection row, once after the write.
    pub async fn row_changed(&self, id: ConnectionId) {
        self.local.evict(id);
        self.tell_replicas(id).await;
    }

    /// The eviction generation: read it before reading a row from the store, and hand it to
    /// [`CredentialBroker::keep_row`], so a row read before a change is never kept after it.
    pub fn local_generation(&self) -> u64 {
        self.local.generation()
    }

    /// The connection row kept in this process, when rows are kept and this one is fresh.
    pub fn local_row(&self, id: ConnectionId) -> Option<Arc<ConnectionRecord>> {
        self.local.get_row(id)
    }

    /// Keep a row read from the store, unless a change was heard since `generation` was read.
    pub fn keep_row(&self, row: &Arc<ConnectionRecord>, generation: u64) {
        self.local.put_row(row, generation);
    }

    /// Whether this process keeps a copy of the connection's row (tests, diagnostics).
    pub fn holds_local_row(&self, id: ConnectionId) -> bool {
        self.local.rows.lock().contains_key(&id)
    }

    /// Keep connection rows even without the invalidation channel: for a process that is the only
    /// writer of its store (the embedded default), where every change goes through this process.
    pub fn keep_rows_without_channel(&self, on: bool) {
        self.local.rows_without_channel.store(on, Ordering::Release);
    }

    /// Turn the in-process tier on (`ttl` > 0) and keep it correct across replicas: subscribe to the
    /// invalidation channel, drop the copies that other replicas' [`CredentialBroker::evict`] and
    /// [`CredentialBroker::row_changed`] name, and resubscribe (emptying the tier, which is off
    /// meanwhile) whenever the channel is lost.
    ///
    /// With `ttl` zero the tier stays off. With an in-process cache there is no channel to listen
    /// to and the task ends at once: credentials are not copied (the cache already is this
    /// process), and rows are kept only if [`CredentialBroker::keep_rows_without_channel`] said this
    /// process is the only writer. Call once per process; the gateway aborts the task at shutdown.
    pub fn spawn_invalidation_listener(
        self: &Arc<Self>,
        ttl: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let memory = !self.cache.is_shared();
        let ms = ttl.as_millis().try_into().unwrap_or(u64::MAX);
        self.local.row_ttl_ms.store(ms, Ordering::Relaxed);
        self.local
            .ttl_ms
            .store(if memory { 0 } else { ms }, Ordering::Relaxed);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if !ttl.is_zero() && !memory {
                this.listen_invalidations().await;
            }
        })
    }

    async fn listen_invalidations(&self) {
        let mut pause = RESUBSCRIBE_MIN;
        let mut reported = false;
        loop {
            match self.cache.subscribe(INVALIDATION_CHANNEL).await {
                Ok(mut sub) => {
                    // Whatever was published while nobody listened is lost: start empty.
                    self.local.clear();
                    self.local.listening.store(true, Ordering::Release);
                    if reported {
                        tracing::info!("credential invalidations heard again; in-process tier on");
                    } else {
                        tracing::debug!("listening to credential invalidations");
                    }
                    reported = false;
                    pause = RESUBSCRIBE_MIN;
                    while let Some(msg) = sub.recv().await {
                        let id = std::str::from_utf8(&msg)
                            .ok()
                            .and_then(|s| s.parse::<ConnectionId>().ok());
                        match id {
                            Some(id) => self.local.evict(id),
                            None => self.local.clear(),
                        }
                    }
                    self.local.listening.store(false, Ordering::Release);
                    self.local.clear();
                    tracing::warn!(
                        "lost the credential invalidation channel; the in-process tier is off until \
                         it is back"
                    );
                }
                Err(e) => {
                    if !reported {
                        tracing::warn!(
                            error = %e,
                            "cannot listen to credential invalidations; the in-process tier stays \
                             off until it can"
                        );
                        reported = true;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESUBSCRIBE_MAX);
        }
    }
}
