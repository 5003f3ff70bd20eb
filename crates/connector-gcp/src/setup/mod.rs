//! The durable post-auth setup: seven idempotent steps worked by a background worker under a lease.
//!
//! A task lives in `setup_tasks`. Its `input` is the checkpoint ([`Checkpoint`]): what the finished
//! steps learned (the project list, billing, the chosen projects, per-project outcomes). A worker
//! claims a due task (no lease, or a lapsed one), renews the lease at every step, page and project,
//! persists step, progress, message and checkpoint as it goes, and resumes a task at the first
//! unfinished step, or, within a step, at the first unfinished project. Every write is fenced by the
//! lease: a worker that lost it (taken over, or the task was cancelled) stops at its next write.
//!
//! A passing fault (a Google 5xx or 429, a timeout, the database) gives the lease back with a
//! back-off; a task claimed more than `AURORA_GCP_SETUP_MAX_ATTEMPTS` times, or whose fault is
//! permanent (a refused grant, no eligible project, no access anywhere), ends in `FAILURE` with a
//! reason. So no task stays live forever.
//!
//! The steps: 1 check the token and the identity; 2 list the projects (Resource Manager, every
//! page); 3 read billing for each project; 4 choose the projects (every eligible one up to
//! `AURORA_GCP_MAX_AUTO_PROJECTS`, else the task ends with `result.status = "needs_selection"`);
//! 5 enable the required APIs (Service Usage `batchEnable`); 6 verify access (`testIamPermissions`,
//! with bounded retries while IAM propagates); 7 make the connection `active` with the projects in
//! its metadata. Nothing changes an organization policy and nothing grants a role.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_core::store::{
    NewSetupTask, SetupOutcome, SetupProgress, SetupState, SetupTaskRecord,
};
use connector_core::{
    Actor, ConnectionId, ConnectionRecord, ConnectionStatus, ConnectorError, ProviderId,
    SecretStoreError, StatusUpdate, StoreError, UserId,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{GoogleError, Operation, Project};
use crate::GcpConnector;

mod access;
mod error;
mod finish;
mod run;
mod steps;
mod worker;
use self::error::*;
pub use self::worker::*;

/// How many steps a setup has.
pub const TOTAL_STEPS: i32 = 7;

/// The permission a chosen project must grant to be kept.
pub const ESSENTIAL_PERMISSION: &str = "resourcemanager.projects.get";
/// The permissions checked on every chosen project; those missing (besides the essential one) are
/// reported in the result, not fatal.
pub const CHECKED_PERMISSIONS: &[&str] = &[
    ESSENTIAL_PERMISSION,
    "compute.instances.list",
    "logging.logEntries.list",
    "monitoring.timeSeries.list",
];

/// The message of each step while it runs (index = step).
const STEP_MESSAGES: [&str; 8] = [
    "Waiting for a worker",
    "Checking your Google account",
    "Listing your Google Cloud projects",
    "Checking billing on your projects",
    "Choosing the projects to connect",
    "Enabling the Google Cloud APIs Aurora needs",
    "Verifying access to your projects",
    "Finishing the connection",
];

/// Progress (0-100) once `done` steps (possibly fractional) are finished.
pub fn progress_at(done: f64) -> i32 {
    ((done.clamp(0.0, TOTAL_STEPS as f64) * 100.0) / TOTAL_STEPS as f64).floor() as i32
}

/// Progress inside step `step` after `i` of `n` items.
fn progress_within(step: i32, i: usize, n: usize) -> i32 {
    let frac = if n == 0 { 1.0 } else { i as f64 / n as f64 };
    progress_at((step - 1) as f64 + frac)
}

/// The outcome of one project in step 5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApisOutcome {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of one project in step 6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessOutcome {
    pub missing: Vec<String>,
}

impl AccessOutcome {
    pub fn ok(&self) -> bool {
        !self.missing.iter().any(|p| p == ESSENTIAL_PERMISSION)
    }
}

/// The task's working document (`setup_tasks.input`). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub connection_id: ConnectionId,
    pub account_id: String,
    #[serde(default)]
    pub sub: Option<String>,
    /// The last step finished (0 before the first).
    #[serde(default)]
    pub completed_step: i32,
    /// Step 2.
    #[serde(default)]
    pub projects: Vec<Project>,
    /// Step 3: project id → billing enabled (`None`: Google would not say).
    #[serde(default)]
    pub billing: BTreeMap<String, Option<bool>>,
    /// Step 4 (or the user's choice through `POST /gcp/post-auth-retry`).
    #[serde(default)]
    pub chosen: Option<Vec<String>>,
    #[serde(default)]
    pub selected_by_user: bool,
    /// Step 5.
    #[serde(default)]
    pub apis: BTreeMap<String, ApisOutcome>,
    /// Step 6.
    #[serde(default)]
    pub access: BTreeMap<String, AccessOutcome>,
}

impl Checkpoint {
    pub fn new(connection_id: ConnectionId, account_id: &str, sub: Option<&str>) -> Self {
        Self {
            connection_id,
            account_id: account_id.to_owned(),
            sub: sub.map(str::to_owned),
            completed_step: 0,
            projects: Vec::new(),
            billing: BTreeMap::new(),
            chosen: None,
            selected_by_user: false,
            apis: BTreeMap::new(),
            access: BTreeMap::new(),
        }
    }

    /// The projects whose billing is enabled, in listing order.
    pub fn eligible(&self) -> Vec<&Project> {
        self.projects
            .iter()
            .filter(|p| self.billing.get(&p.project_id) == Some(&Some(true)))
            .collect()
    }

    fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.project_id == id)
    }

    fn name_of(&self, id: &str) -> String {
        self.project(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_owned())
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The projects a selection may name, as the `needs_selection` result lists them.
pub fn project_list(projects: &[&Project]) -> serde_json::Value {
    serde_json::Value::Array(
        projects
            .iter()
            .map(|p| serde_json::json!({"projectId": p.project_id, "name": p.name}))
            .collect(),
    )
}

/// A new task queued for a connection.
pub fn new_task(
    user: &UserId,
    cp: &Checkpoint,
    id: uuid::Uuid,
    step: i32,
    message: &str,
) -> NewSetupTask {
    NewSetupTask {
        id,
        user_id: user.clone(),
        connection_id: Some(cp.connection_id),
        provider: ProviderId::from_static(crate::PROVIDER_ID),
        state: SetupState::Pending,
        step,
        total_steps: TOTAL_STEPS,
        progress: progress_at(step as f64),
        status_message: message.to_owned(),
        input: cp.to_json(),
    }
}

#[cfg(test)]
mod tests;
