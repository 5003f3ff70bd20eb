//! `Cache` for `RedisCache`: sealed entries, locks with fencing tokens, counters and the invalidation channel over Redis.

use super::*;

#[async_trait]
impl Cache for RedisCache {
    fn backend_name(&self) -> &'static str {
        "redis"
    }
    fn is_shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let pong: String = self.query("ping", &redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(CacheError::Unavailable(format!(
                "redis ping: unexpected answer {pong:?}"
            )))
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.full_key(key));
        self.query("get", &cmd).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl));
        self.query::<()>("set", &cmd).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.full_key(key));
        self.query::<u64>("delete", &cmd).await.map(drop)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}*", escape_glob(&self.full_key(prefix)));
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.query("delete_prefix scan", &scan).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                for k in &keys {
                    unlink.arg(k.as_slice());
                }
                deleted += self.query::<u64>("delete_prefix unlink", &unlink).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<LockToken>, CacheError> {
        let keys = [
            self.full_key(&format!("lock:{key}")),
            self.full_key("lock-fence"),
        ];
        let fence: u64 = self
            .script("try_lock", TRY_LOCK, &keys, &[ttl_millis(ttl).to_string()])
            .await?;
        Ok((fence > 0).then_some(LockToken { fence }))
    }

    async fn unlock(&self, key: &str, token: LockToken) -> Result<bool, CacheError> {
        let keys = [self.full_key(&format!("lock:{key}"))];
        let released: u64 = self
            .script("unlock", UNLOCK, &keys, &[token.fence.to_string()])
            .await?;
        Ok(released == 1)
    }

    async fn incr_window(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<(u64, Duration), CacheError> {
        let keys = [self.full_key(&format!("window:{key}"))];
        let (n, left_ms): (u64, i64) = self
            .script(
                "incr_window",
                INCR_WINDOW,
                &keys,
                &[ttl_millis(window).to_string()],
            )
            .await?;
        Ok((n, Duration::from_millis(left_ms.max(0).unsigned_abs())))
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.full_key(channel)).arg(message);
        self.query::<u64>("publish", &cmd).await.map(drop)
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, CacheError> {
        let name = self.full_key(channel);
        let client = self.client.clone();
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await.map_err(Failure::Redis)?;
            pubsub.subscribe(&name).await.map_err(Failure::Redis)?;
            Ok(pubsub)
        };
        // Taken before connecting, so an opening during the connect is seen too.
        let mut trips = self.breaker.trips();
        let pubsub = self.bounded("subscribe", connect).await?;
        let (mut sink, mut stream) = pubsub.split();
        let (tx, rx) = tokio::sync::mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(async move {
            let mut ping = tokio::time::interval(PUBSUB_PING);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ping.tick().await;
            loop {
                tokio::select! {
                    () = tx.closed() => break,
                    _ = trips.changed() => {
                        tracing::warn!("redis circuit breaker opened; closing the subscription");
                        break;
                    }
                    msg = stream.next() => {
                        let Some(msg) = msg else {
                            tracing::warn!("redis subscription closed by the server or the network");
                            break;
                        };
                        // A full buffer means the subscriber fell behind: close rather than drop
                        // messages silently.
                        if tx.try_send(msg.get_payload_bytes().to_vec()).is_err() {
                            break;
                        }
                    }
                    _ = ping.tick() => {
                        let alive = tokio::select! {
                            a = tokio::time::timeout(PUBSUB_PING_DEADLINE, sink.ping::<redis::Value>()) => a,
                            _ = trips.changed() => {
                                tracing::warn!("redis circuit breaker opened; closing the subscription");
                                break;
                            }
                        };
                        if !matches!(alive, Ok(Ok(_))) {
                            tracing::warn!("redis subscription stopped answering pings");
                            break;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}
