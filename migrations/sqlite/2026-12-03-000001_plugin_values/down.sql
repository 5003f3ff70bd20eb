-- Undo plugin values: the AWS external-ID rows go back to `external_ids` (a value never replaced
-- has no `rotated_at`); other plugins' values are dropped.

CREATE TABLE external_ids (
    user_id     TEXT PRIMARY KEY,
    external_id TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    rotated_at  TIMESTAMP
);

INSERT INTO external_ids (user_id, external_id, created_at, rotated_at)
SELECT user_id, value, created_at, NULLIF(updated_at, created_at)
FROM plugin_values
WHERE provider = 'aws' AND name = 'external_id';

DROP TABLE plugin_values;
