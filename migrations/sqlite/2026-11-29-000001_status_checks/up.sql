-- Lifecycle (connector-lifecycle): scheduled status checks under a row lease, expiry warnings, and the
-- record of credential use that drives proactive refresh. Keep in step with migrations/postgres.

-- The next scheduled check (NULL: not scheduled yet; the scheduler schedules it one interval ahead),
-- the replica holding the check's lease and until when, and the passing failures in a row (back-off).
ALTER TABLE user_connections ADD COLUMN next_check_at TIMESTAMP;
ALTER TABLE user_connections ADD COLUMN check_lease_owner TEXT;
ALTER TABLE user_connections ADD COLUMN check_lease_until TIMESTAMP;
ALTER TABLE user_connections ADD COLUMN check_failures INTEGER NOT NULL DEFAULT 0;
-- The `expires_at` value an `expiry_warning` was recorded for (once per connection per value).
ALTER TABLE user_connections ADD COLUMN expiry_warned_for TIMESTAMP;
CREATE INDEX user_connections_next_check_idx ON user_connections (next_check_at);
CREATE INDEX user_connections_expires_idx ON user_connections (expires_at);

-- One row per connection and credential mode in use: when it was last used, and when its cached
-- credentials should be refreshed ahead of use (NULL: nothing to refresh). `id` is
-- `{connection_id}:{mode}`.
CREATE TABLE credential_usage (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES user_connections (id) ON DELETE CASCADE,
    mode          TEXT NOT NULL,
    used_at       TIMESTAMP NOT NULL,
    refresh_at    TIMESTAMP,
    lease_owner   TEXT,
    lease_until   TIMESTAMP
);
CREATE INDEX credential_usage_refresh_idx ON credential_usage (refresh_at);
CREATE INDEX credential_usage_connection_idx ON credential_usage (connection_id);
