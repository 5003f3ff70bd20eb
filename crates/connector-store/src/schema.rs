//! Diesel table definitions shared by both backends.
//!
//! Types are chosen so PostgreSQL and SQLite read them the same way: ids (UUIDs) are `Text`, JSON is
//! `Text`, booleans are `Bool`, binary is `Binary` (bytea / blob) and timestamps are `Timestamp`
//! (chrono `NaiveDateTime`, always UTC, truncated to microseconds before they are written).
//! PostgreSQL stores them as `TIMESTAMP` (without time zone); SQLite as diesel's text form
//! `YYYY-MM-DD HH:MM:SS[.fraction]`, which orders correctly as text.

diesel::table! {
    user_connections (id) {
        id -> Text,
        user_id -> Text,
        provider -> Text,
        account_id -> Text,
        display_name -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        read_only -> Bool,
        secret_ref -> Text,
        metadata -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_validated_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        // Lifecycle (`checks.rs`): not read into `ConnectionRow`; written by the scheduler's queries.
        next_check_at -> Nullable<Timestamp>,
        check_lease_owner -> Nullable<Text>,
        check_lease_until -> Nullable<Timestamp>,
        check_failures -> Integer,
        expiry_warned_for -> Nullable<Timestamp>,
    }
}

// Credentials in use, per connection and mode, for the refresh ahead of use (`checks.rs`).
diesel::table! {
    credential_usage (id) {
        id -> Text,
        connection_id -> Text,
        mode -> Text,
        used_at -> Timestamp,
        refresh_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        user_id -> Text,
        connection_id -> Nullable<Text>,
        provider -> Nullable<Text>,
        action -> Text,
        actor -> Text,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        user_id -> Text,
        provider -> Text,
        sealed_verifier -> Binary,
        redirect_uri -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

// Small named values of provider plugins, per user (AWS: the handle of its external ID).
diesel::table! {
    plugin_values (provider, user_id, name) {
        provider -> Text,
        user_id -> Text,
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    setup_tasks (id) {
        id -> Text,
        user_id -> Text,
        connection_id -> Nullable<Text>,
        provider -> Text,
        state -> Text,
        step -> Integer,
        total_steps -> Integer,
        progress -> Integer,
        status_message -> Text,
        error -> Nullable<Text>,
        result -> Nullable<Text>,
        input -> Text,
        attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_outbox (id) {
        id -> Text,
        event_type -> Text,
        user_id -> Text,
        connection_id -> Nullable<Text>,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        last_attempt_at -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    user_connections,
    audit_events,
    oauth_states,
    plugin_values,
    setup_tasks,
);
