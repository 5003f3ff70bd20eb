-- The webhook outbox (SQLite). Keep in step with migrations/postgres.
-- One row per event, written in the transaction of its audit line; a delivery worker of any replica
-- claims due rows under a lease. Rows stay until delivered (then pruned after a retention) or
-- dead-lettered as 'failed' (kept for inspection). The payload is the exact signed body: never a secret.

CREATE TABLE webhook_outbox (
    id               TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    connection_id    TEXT,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_error       TEXT,
    last_attempt_at  TIMESTAMP,
    delivered_at     TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX webhook_outbox_state_due_idx ON webhook_outbox (state, next_attempt_at);
