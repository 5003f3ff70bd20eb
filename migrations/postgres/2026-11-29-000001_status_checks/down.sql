-- Undo the lifecycle columns and the credential usage table.
DROP TABLE IF EXISTS credential_usage;
DROP INDEX IF EXISTS user_connections_expires_idx;
DROP INDEX IF EXISTS user_connections_next_check_idx;
ALTER TABLE user_connections DROP COLUMN expiry_warned_for;
ALTER TABLE user_connections DROP COLUMN check_failures;
ALTER TABLE user_connections DROP COLUMN check_lease_until;
ALTER TABLE user_connections DROP COLUMN check_lease_owner;
ALTER TABLE user_connections DROP COLUMN next_check_at;
