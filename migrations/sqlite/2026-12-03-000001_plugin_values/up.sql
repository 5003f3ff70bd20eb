-- Plugin values (SQLite). Keep in step with migrations/postgres.
-- Small named values a provider plugin keeps per user, never secrets. They replace the AWS-only
-- `external_ids` table: its rows (the handle of each user's external ID) become values
-- ('aws', user, 'external_id'); a rotation's time becomes `updated_at`.

CREATE TABLE plugin_values (
    provider   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (provider, user_id, name)
);

INSERT INTO plugin_values (provider, user_id, name, value, created_at, updated_at)
SELECT 'aws', user_id, 'external_id', external_id, created_at, COALESCE(rotated_at, created_at)
FROM external_ids;

DROP TABLE external_ids;
