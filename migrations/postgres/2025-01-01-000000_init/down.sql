-- Reverts the initial schema (PostgreSQL).
DROP TABLE IF EXISTS setup_tasks;
DROP TABLE IF EXISTS external_ids;
DROP TABLE IF EXISTS oauth_states;
DROP TABLE IF EXISTS audit_events;
DROP TABLE IF EXISTS user_connections;
