-- Initial schema of Aurora Connectors (SQLite). Keep in step with migrations/postgres.
-- Ids (UUIDs) and JSON are TEXT; timestamps are TIMESTAMP: diesel's text "YYYY-MM-DD HH:MM:SS[.fraction]" in UTC
-- (microseconds at most), which orders correctly as text.

CREATE TABLE user_connections (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL,
    provider          TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    display_name      TEXT,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    read_only         BOOLEAN NOT NULL DEFAULT 0,
    secret_ref        TEXT NOT NULL,
    metadata          TEXT NOT NULL DEFAULT '{}',
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    last_validated_at TIMESTAMP,
    expires_at        TIMESTAMP,
    CONSTRAINT user_connections_user_provider_account_key UNIQUE (user_id, provider, account_id)
);
CREATE INDEX user_connections_user_provider_idx ON user_connections (user_id, provider);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    connection_id TEXT,
    provider      TEXT,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '{}',
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_user_created_idx ON audit_events (user_id, created_at);

CREATE TABLE oauth_states (
    state_hash      TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    sealed_verifier BLOB  NOT NULL,
    redirect_uri    TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL
);

CREATE TABLE external_ids (
    user_id     TEXT PRIMARY KEY,
    external_id TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    rotated_at  TIMESTAMP
);

CREATE TABLE setup_tasks (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    connection_id    TEXT,
    provider         TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (state IN ('PENDING', 'STARTED', 'PROGRESS', 'SUCCESS', 'FAILURE')),
    step             INTEGER NOT NULL DEFAULT 0,
    total_steps      INTEGER NOT NULL DEFAULT 0,
    progress         INTEGER NOT NULL DEFAULT 0,
    status_message   TEXT NOT NULL DEFAULT '',
    error            TEXT,
    result           TEXT,
    input            TEXT NOT NULL DEFAULT '{}',
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX setup_tasks_state_lease_idx ON setup_tasks (state, lease_expires_at);
