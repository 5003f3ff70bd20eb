//! A refresh: single-flight in this process, the cross-replica lock and hand-off, the provider
//! call, and the sealed write-back to the shared cache.

use super::*;

/// The outcome of asking for the cross-replica refresh lock.
enum Acquired {
    /// This process holds the lock and refreshes.
    Lock(LockToken),
    /// Another replica refreshed meanwhile: its result.
    Result(Arc<Credentials>),
    /// No lock (the cache has none, or the wait ran out): refresh without it.
    Without,
}

impl CredentialBroker {
    pub(super) async fn refresh(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
        key: &str,
    ) -> Result<Arc<Credentials>, ApiError> {
        // Another replica may have refreshed while we queued.
        if let Some(hit) = self.lookup(key).await {
            return Ok(Arc::new(hit));
        }
        let lock = lock_key(key);
        let token = match self.acquire(&lock, key, conn.id).await {
            Acquired::Result(c) => return Ok(c),
            Acquired::Lock(t) => Some(t),
            Acquired::Without => None,
        };
        let out = async {
            if token.is_some() {
                // The previous holder may have finished between our look and our lock.
                if let Some(hit) = self.lookup(key).await {
                    return Ok(Arc::new(hit));
                }
            }
            self.issue(connector, conn, mode, key, token.is_some())
                .await
        }
        .await;
        if let Some(t) = token {
            match self.cache.unlock(&lock, t).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    connection = %conn.id,
                    fence = t.fence,
                    "the refresh outlived its lock lease; another replica may have refreshed too"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, connection = %conn.id, "could not release the refresh lock; it expires on its own")
                }
            }
        }
        out
    }

    /// Take the cross-replica refresh lock, or wait (bounded) for the replica holding it.
    async fn acquire(&self, lock: &str, key: &str, id: ConnectionId) -> Acquired {
        let deadline = Instant::now() + REFRESH_LOCK_WAIT;
        let waiting_since = Utc::now();
        let mut pause = POLL_MIN;
        loop {
            match self.cache.try_lock(lock, REFRESH_LOCK_TTL).await {
                Ok(Some(token)) => return Acquired::Lock(token),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        connection = %id,
                        "no cross-replica refresh lock (shared cache down?): refreshing under this \
                         process's single-flight only, so other replicas may refresh too"
                    );
                    return Acquired::Without;
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    connection = %id,
                    waited_ms = REFRESH_LOCK_WAIT.as_millis() as u64,
                    "another replica's refresh did not finish in time; refreshing here"
                );
                return Acquired::Without;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(POLL_MAX);
            if let Some(hit) = self.poll_result(key, waiting_since).await {
                self.metrics.cache_lookups.with_label_values(&["hit"]).inc();
                return Acquired::Result(Arc::new(hit));
            }
        }
    }

    /// Call the connector with the stored secret; write back a rotated secret with check-and-set.
    pub(super) async fn issue(
        &self,
        connector: Arc<dyn Connector>,
        conn: &ConnectionRecord,
        mode: CredentialMode,
        key: &str,
        hand_off: bool,
    ) -> Result<Arc<Credentials>, ApiError> {
        let path = SecretPath::from_stored(&conn.secret_ref)?;
        let mut secret: VersionedSecret = self
            .secrets
            .get_versioned(&path)
            .await?
            .ok_or_else(|| missing_secret(conn))?;
        let provider = conn.provider.as_str();
        let mut attempt = 0;
        // With the version of the stored secret they go with (0: unknown).
        let (issued, version): (IssuedCredentials, u64) = loop {
            attempt += 1;
            let issued = match connector.issue_credentials(conn, &secret.value, mode).await {
                Ok(i) => {
                    self.metrics
                        .credential_refreshes
                        .with_label_values(&[provider, "ok"])
                        .inc();
                    i
                }
                Err(e) => {
                    self.metrics
                        .credential_refreshes
                        .with_label_values(&[provider, "error"])
                        .inc();
                    return Err(e.into());
                }
            };
            let Some(updated) = &issued.updated_secret else {
                // Nothing to write back; still, credentials issued from a secret that was replaced
                // (a reconnect) or deleted (a disconnect) while the provider answered must not be
                // cached after that change's eviction.
                match self.secrets.get_versioned(&path).await? {
                    None => return Err(missing_secret(conn)),
                    Some(now) if now.version != secret.version && attempt < 2 => {
                        tracing::info!(
                            connection = %conn.id,
                            "the stored secret changed during the refresh; using the newer one"
                        );
                        secret = now;
                        continue;
                    }
                    Some(_) => break (issued, secret.version),
                }
            };
            match self.secrets.put_cas(&path, updated, secret.version).await {
                Ok(version) => break (issued, version),
                Err(SecretStoreError::Conflict(_)) if attempt < 2 => {
                    // Someone stored newer credentials since we read (a reconnect, or another
                    // replica's refresh): never overwrite them; issue from the newer secret.
                    tracing::info!(
                        connection = %conn.id,
                        "the stored secret changed during the refresh; using the newer one"
                    );
                    secret = self
                        .secrets
                        .get_versioned(&path)
                        .await?
                        .ok_or_else(|| missing_secret(conn))?;
                }
                Err(SecretStoreError::Conflict(_)) => {
                    tracing::warn!(
                        connection = %conn.id,
                        "the stored secret keeps changing; keeping the stored one and handing out \
                         these credentials"
                    );
                    break (issued, 0);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let creds = Credentials {
            credentials: issued.credentials,
            expires_at: issued.expires_at,
        };
        let cached = self.store(key, &creds).await;
        if hand_off && !cached {
            self.store_sealed(&handoff_key(key), &creds, HANDOFF_TTL, Some(Utc::now()))
                .await;
        }
        let creds = Arc::new(creds);
        if !cached && version > 0 && is_fresh(creds.expires_at, Utc::now()) {
            // The shared cache could not keep them (down, or its breaker open): pinned, so that
            // this process needs no provider call for them while the cache stays unavailable.
            self.local.pin((conn.id, mode), &creds, version);
        }
        Ok(creds)
    }

    /// Cache `creds` under `key` if they are worth it; whether they were written.
    pub(super) async fn store(&self, key: &str, creds: &Credentials) -> bool {
        let now = Utc::now();
        let ttl = match creds.expires_at {
            None => NON_EXPIRING_TTL,
            Some(e) => match (e - now).to_std() {
                Ok(left) if left > REFRESH_MARGIN => (left - REFRESH_MARGIN).min(MAX_TTL),
                // Already inside the margin: not worth caching.
                _ => return false,
            },
        };
        self.store_sealed(key, creds, ttl, None).await
    }

    /// Seal and write `creds` under `key` for at most `ttl` (never past their expiry).
    pub(super) async fn store_sealed(
        &self,
        key: &str,
        creds: &Credentials,
        ttl: Duration,
        written: Option<DateTime<Utc>>,
    ) -> bool {
        let ttl = match creds.expires_at {
            None => ttl,
            Some(e) => match (e - Utc::now()).to_std() {
                Ok(left) if !left.is_zero() => ttl.min(left),
                _ => return false,
            },
        };
        let Ok(text) = std::str::from_utf8(creds.credentials.expose_bytes()) else {
            return false;
        };
        let entry = CachedEntry {
            c: text.to_owned(),
            e: creds.expires_at,
            w: written,
        };
        let plain = match serde_json::to_vec(&entry) {
            Ok(p) => Zeroizing::new(p),
            Err(_) => return false,
        };
        let _wipe = Zeroizing::new(entry.c);
        match self.key.seal(&plain, key.as_bytes()) {
            Ok(sealed) => match self.cache.set(key, &self.frame(sealed), ttl).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not write the credential cache");
                    false
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "could not seal a cache entry");
                false
            }
        }
    }

    /// A sealed entry as stored: prefixed with the id of the key that sealed it.
    pub(super) fn frame(&self, sealed: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + sealed.len());
        out.push(ENTRY_WITH_KEY_ID);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&sealed);
        out
    }
}
