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

/// Why a run stopped before the end.
#[derive(Debug)]
enum StepError {
    /// A passing fault: give the lease back, retry after a back-off.
    Transient {
        message: String,
        retry_after: Option<u64>,
    },
    /// The task cannot succeed. `refusal`: Google refused the grant.
    Permanent { message: String, refusal: bool },
    /// Another worker holds the task now, or it was cancelled.
    LeaseLost,
}

impl StepError {
    fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            refusal: false,
        }
    }
    fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<ConnectorError> for StepError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::CredentialsRejected(m) => Self::Permanent {
                message: m,
                refusal: true,
            },
            ConnectorError::InvalidRequest(m) => Self::permanent(m),
            ConnectorError::ProviderUnavailable(m) => Self::transient(m),
            ConnectorError::RateLimited {
                message,
                retry_after_secs,
            } => Self::Transient {
                message,
                retry_after: Some(retry_after_secs),
            },
            ConnectorError::Api(a) if a.status.is_server_error() => Self::transient(a.message),
            ConnectorError::Api(a) => Self::permanent(a.message),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "setup: database error");
        Self::transient("the database was unavailable")
    }
}

impl From<SecretStoreError> for StepError {
    fn from(e: SecretStoreError) -> Self {
        tracing::warn!(error = %e, "setup: secret store error");
        match e {
            SecretStoreError::Unavailable(_) => Self::transient("the secret store was unavailable"),
            _ => Self::Permanent {
                message: "the stored Google authorization could not be read; reconnect the Google account".into(),
                refusal: true,
            },
        }
    }
}

impl From<connector_core::ApiError> for StepError {
    fn from(e: connector_core::ApiError) -> Self {
        ConnectorError::Api(e).into()
    }
}

fn google(e: GoogleError, what: &str) -> StepError {
    e.into_connector(what).into()
}

/// The worker loop of one replica: claim a due task when a slot is free, else sleep. Tasks run
/// inside a `JoinSet` owned by this future, so aborting it (gateway shutdown) stops them too; their
/// leases then lapse and another replica resumes them.
pub async fn run_worker(connector: Arc<GcpConnector>) {
    let w = connector.cfg.worker.clone();
    let slots = Arc::new(Semaphore::new(w.concurrency));
    let mut running = JoinSet::new();
    tracing::info!(worker = %connector.worker_id, "GCP setup worker started");
    loop {
        while running.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(w.lease).unwrap_or_default();
        match connector
            .platform
            .store()
            .claim_setup_task(&connector.provider, &connector.worker_id, now, lease_until)
            .await
        {
            Ok(Some(task)) => {
                let c = connector.clone();
                running.spawn(async move {
                    c.run_task(task).await;
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = tokio::time::sleep(w.poll) => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "GCP setup worker could not claim a task");
                tokio::time::sleep(w.poll.max(Duration::from_secs(1))).await;
            }
        }
    }
}

impl GcpConnector {
    async fn run_task(&self, task: SetupTaskRecord) {
        let started = std::time::Instant::now();
        let id = task.id;
        let cp: Checkpoint = match serde_json::from_value(task.input.clone()) {
            Ok(cp) => cp,
            Err(_) => {
                tracing::error!(task = %id, "a GCP setup task's checkpoint does not decode");
                let mut run = TaskRun::detached(self, task);
                run.fail(
                    "the setup task is corrupt; connect the Google account again",
                    false,
                )
                .await;
                return;
            }
        };
        tracing::info!(task = %id, attempt = task.attempts, from_step = cp.completed_step + 1, "GCP setup task claimed");
        let mut run = TaskRun {
            c: self,
            progress: task.progress,
            task,
            cp,
            token: None,
        };
        let max = self.cfg.worker.max_attempts;
        let res = if run.task.attempts > max {
            Err(StepError::permanent(format!(
                "the setup gave up after {max} attempts; last status: {}",
                run.task.status_message
            )))
        } else {
            run.execute().await
        };
        match res {
            Ok(()) => {
                tracing::info!(task = %id, elapsed_ms = started.elapsed().as_millis() as u64, "GCP setup task finished")
            }
            Err(StepError::LeaseLost) => {
                tracing::info!(task = %id, "GCP setup task was taken over or cancelled; this worker stops")
            }
            Err(StepError::Permanent { message, refusal }) => run.fail(&message, refusal).await,
            Err(StepError::Transient {
                message,
                retry_after,
            }) => {
                if run.task.attempts >= max {
                    run.fail(
                        &format!("the setup gave up after {max} attempts: {message}"),
                        false,
                    )
                    .await;
                } else {
                    run.retry_later(&message, retry_after).await;
                }
            }
        }
    }
}

/// One run of one task by this worker.
struct TaskRun<'a> {
    c: &'a GcpConnector,
    task: SetupTaskRecord,
    cp: Checkpoint,
    /// The access token of this run and when it expires.
    token: Option<(SecretString, DateTime<Utc>)>,
    /// The last progress written.
    progress: i32,
}

impl<'a> TaskRun<'a> {
    /// A run whose checkpoint is unusable: only `fail` is called on it.
    fn detached(c: &'a GcpConnector, task: SetupTaskRecord) -> Self {
        let conn = task.connection_id.unwrap_or_default();
        Self {
            c,
            progress: task.progress,
            cp: Checkpoint::new(conn, "", None),
            task,
            token: None,
        }
    }

    fn lease_until(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.c.cfg.worker.lease).unwrap_or_default()
    }

    fn user(&self) -> &UserId {
        &self.task.user_id
    }

    async fn report(
        &mut self,
        step: i32,
        progress: i32,
        message: &str,
        with_checkpoint: bool,
    ) -> Result<(), StepError> {
        self.progress = self.progress.max(progress);
        let p = SetupProgress {
            state: SetupState::Progress,
            step,
            progress: self.progress,
            status_message: message.to_owned(),
            input: with_checkpoint.then(|| self.cp.to_json()),
            lease_until: Some(self.lease_until()),
        };
        if self
            .c
            .platform
            .store()
            .save_setup_progress(self.task.id, &self.c.worker_id, p)
            .await?
        {
            Ok(())
        } else {
            Err(StepError::LeaseLost)
        }
    }

    async fn renew(&self) -> Result<(), StepError> {
        if self
            .c
            .platform
            .store()
            .renew_setup_lease(self.task.id, &self.c.worker_id, self.lease_until())
            .await?
        {
            Ok(())
        } else {
            Err(StepError::LeaseLost)
        }
    }

    async fn connection(&self) -> Result<ConnectionRecord, StepError> {
        self.c
            .platform
            .store()
            .get_connection(self.user(), self.cp.connection_id)
            .await?
            .filter(|c| c.provider == self.c.provider)
            .ok_or_else(|| {
                StepError::permanent("the Google Cloud connection was removed during setup")
            })
    }

    /// This run's access token, refreshed with the stored grant when absent or within 5 minutes of
    /// expiry.
    async fn token(&mut self) -> Result<SecretString, StepError> {
        if let Some((t, exp)) = &self.token {
            if *exp - Utc::now() > chrono::Duration::minutes(5) {
                return Ok(t.clone());
            }
        }
        let conn = self.connection().await?;
        let secret =
            self.c
                .platform
                .load_secret(&conn)
                .await?
                .ok_or_else(|| {
                    StepError::Permanent {
                message:
                    "the stored Google authorization is missing; connect the Google account again"
                        .into(),
                refusal: true,
            }
                })?;
        let r = self.c.refresh(&secret).await?;
        if let Some(updated) = &r.updated_secret {
            self.c.store_rotated(&conn, &secret, updated).await;
        }
        self.token = Some((r.access_token.clone(), r.expires_at));
        Ok(r.access_token)
    }

    async fn execute(&mut self) -> Result<(), StepError> {
        let first = self.cp.completed_step + 1;
        for step in first..=TOTAL_STEPS {
            self.connection().await?;
            let msg = STEP_MESSAGES[step as usize];
            self.report(step, progress_at((step - 1) as f64), msg, false)
                .await?;
            match step {
                1 => self.step_identity().await?,
                2 => self.step_projects().await?,
                3 => self.step_billing().await?,
                4 => {
                    if !self.step_choose().await? {
                        return Ok(());
                    }
                }
                5 => self.step_enable_apis().await?,
                6 => self.step_verify_access().await?,
                _ => return self.step_finish().await,
            }
            self.cp.completed_step = step;
            self.report(
                step,
                progress_at(step as f64),
                &format!("{msg}: done"),
                true,
            )
            .await?;
        }
        Ok(())
    }

    /// Step 1: the grant works and belongs to the account the connection names.
    async fn step_identity(&mut self) -> Result<(), StepError> {
        let token = self.token().await?;
        let client = self.c.client()?;
        let identity = self
            .c
            .oauth
            .identity(&token, None, &client.client_id)
            .await?;
        if let Some(sub) = &self.cp.sub {
            if *sub != identity.sub {
                return Err(StepError::Permanent {
                    message: "the Google authorization belongs to another account than the one that signed in; connect again".into(),
                    refusal: true,
                });
            }
        } else {
            self.cp.sub = Some(identity.sub);
        }
        Ok(())
    }

    /// Step 2: every active project the account can see, every page.
    async fn step_projects(&mut self) -> Result<(), StepError> {
        const MAX_PAGES: usize = 1000;
        let mut all: Vec<Project> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut page_token: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let token = self.token().await?;
            let (batch, next) = self
                .c
                .api
                .search_projects_page(&token, page_token.as_deref())
                .await
                .map_err(|e| google(e, "listing the projects"))?;
            for p in batch {
                if seen.insert(p.project_id.clone()) {
                    all.push(p);
                }
            }
            match next {
                Some(t) if Some(&t) != page_token.as_ref() => page_token = Some(t),
                _ => break,
            }
            self.report(
                2,
                progress_at(1.0),
                &format!(
                    "{} ({} projects so far, page {page})",
                    STEP_MESSAGES[2],
                    all.len()
                ),
                false,
            )
            .await?;
        }
        if all.is_empty() {
            return Err(StepError::permanent(
                "this Google account has access to no active Google Cloud project; create a project \
                 (or ask for access to one) and connect again",
            ));
        }
        self.cp.projects = all;
        Ok(())
    }

    /// Step 3: billing of each project; a project whose billing Google will not show is not eligible.
    async fn step_billing(&mut self) -> Result<(), StepError> {
        let ids: Vec<String> = self
            .cp
            .projects
            .iter()
            .map(|p| p.project_id.clone())
            .collect();
        let n = ids.len();
        for (i, id) in ids.iter().enumerate() {
            if self.cp.billing.contains_key(id) {
                continue;
            }
            let token = self.token().await?;
            let enabled = match self.c.api.billing_enabled(&token, id).await {
                Ok(b) => Some(b),
                Err(e) if e.is_transient() || e == GoogleError::Unauthorized => {
                    return Err(google(e, "reading billing"))
                }
                Err(e) => {
                    tracing::info!(reason = %e, "billing of a project is not readable; it is not eligible");
                    None
                }
            };
            self.cp.billing.insert(id.clone(), enabled);
            self.report(
                3,
                progress_within(3, i + 1, n),
                &format!("{} ({} of {n})", STEP_MESSAGES[3], i + 1),
                true,
            )
            .await?;
        }
        Ok(())
    }

    /// Step 4: every eligible project up to the limit; above it the task ends asking the user to choose.
    /// `Ok(false)`: the task ended (needs_selection).
    async fn step_choose(&mut self) -> Result<bool, StepError> {
        if self.cp.chosen.as_ref().is_some_and(|c| !c.is_empty()) {
            return Ok(true);
        }
        let eligible = self.cp.eligible();
        if eligible.is_empty() {
            return Err(StepError::permanent(format!(
                "none of your {} Google Cloud projects has billing enabled (or its billing is not \
                 readable with your account); enable billing on a project and connect again",
                self.cp.projects.len()
            )));
        }
        let max = self.c.cfg.max_auto_projects;
        if eligible.len() <= max {
            let chosen = eligible.iter().map(|p| p.project_id.clone()).collect();
            self.cp.chosen = Some(chosen);
            return Ok(true);
        }
        let n = eligible.len();
        let result = serde_json::json!({
            "status": "needs_selection",
            "message": format!("{n} projects are eligible, more than the {max} connected automatically; choose the projects to connect"),
            "maxAutoProjects": max,
            "eligibleProjects": project_list(&eligible),
        });
        let message = format!("Choose the projects to connect ({n} eligible)");
        let outcome = SetupOutcome {
            state: SetupState::Success,
            progress: self.progress,
            status_message: message.clone(),
            error: None,
            result: Some(result),
            input: Some(self.cp.to_json()),
        };
        if !self
            .c
            .platform
            .store()
            .finish_setup_task(self.task.id, &self.c.worker_id, outcome)
            .await?
        {
            return Err(StepError::LeaseLost);
        }
        if let Ok(conn) = self.connection().await {
            let _ = self
                .c
                .platform
                .update_status(
                    self.user(),
                    conn.id,
                    StatusUpdate {
                        status: ConnectionStatus::Pending,
                        status_reason: Some(message),
                        last_validated_at: None,
                    },
                )
                .await;
        }
        Ok(false)
    }

    fn chosen(&self) -> Vec<String> {
        self.cp.chosen.clone().unwrap_or_default()
    }

    /// Step 5: `batchEnable` of the required APIs on each chosen project, waiting for its operation.
    async fn step_enable_apis(&mut self) -> Result<(), StepError> {
        let chosen = self.chosen();
        let n = chosen.len();
        let services = self.c.cfg.required_apis.clone();
        for (i, id) in chosen.iter().enumerate() {
            if self.cp.apis.contains_key(id) {
                continue;
            }
            let token = self.token().await?;
            let outcome = match self.c.api.batch_enable(&token, id, &services).await {
                Ok(op) => self.wait_operation(op, id).await?,
                Err(e) if e.is_transient() || e == GoogleError::Unauthorized => {
                    return Err(google(e, "enabling the APIs"))
                }
                Err(e) => ApisOutcome {
                    ok: false,
                    reason: Some(format!("the APIs could not be enabled: {}", e.reason())),
                },
            };
            self.cp.apis.insert(id.clone(), outcome);
            self.report(
                5,
                progress_within(5, i + 1, n),
                &format!("{} ({} of {n})", STEP_MESSAGES[5], i + 1),
                true,
            )
            .await?;
        }
        if !chosen
            .iter()
            .any(|id| self.cp.apis.get(id).is_some_and(|o| o.ok))
        {
            return Err(StepError::permanent(format!(
                "the required APIs could not be enabled on any chosen project ({}); check that your \
                 account may enable services (roles/serviceusage.serviceUsageAdmin) and that billing \
                 is active",
                self.failures(&chosen, |id| self.cp.apis.get(id).and_then(|o| o.reason.clone()))
            )));
        }
        Ok(())
    }

    async fn wait_operation(
        &mut self,
        mut op: Operation,
        id: &str,
    ) -> Result<ApisOutcome, StepError> {
        let w = self.c.cfg.worker.clone();
        let mut polls = 0;
        while !op.done {
            if polls >= w.operation_max_polls || op.name.is_empty() {
                return Err(StepError::transient(format!(
                    "Google is still enabling the APIs on project {id}"
                )));
            }
            polls += 1;
            tokio::time::sleep(w.operation_poll).await;
            self.renew().await?;
            let token = self.token().await?;
            op = match self.c.api.operation(&token, &op.name).await {
                Ok(o) => o,
                Err(e) => return Err(google(e, "waiting for the APIs to be enabled")),
            };
        }
        Ok(match op.error {
            None => ApisOutcome {
                ok: true,
                reason: None,
            },
            Some(e) => ApisOutcome {
                ok: false,
                reason: Some(format!(
                    "Google could not enable the APIs (error code {})",
                    e.code.unwrap_or_default()
                )),
            },
        })
    }

    /// Step 6: `testIamPermissions` on each project whose APIs are enabled, retried while the essential
    /// permission is missing (IAM propagation), a bounded number of times.
    async fn step_verify_access(&mut self) -> Result<(), StepError> {
        let w = self.c.cfg.worker.clone();
        let candidates: Vec<String> = self
            .chosen()
            .into_iter()
            .filter(|id| self.cp.apis.get(id).is_some_and(|o| o.ok))
            .collect();
        let n = candidates.len();
        for (i, id) in candidates.iter().enumerate() {
            if self.cp.access.contains_key(id) {
                continue;
            }
            let mut tries = 0;
            let missing = loop {
                let token = self.token().await?;
                let granted = match self
                    .c
                    .api
                    .test_iam_permissions(&token, id, CHECKED_PERMISSIONS)
                    .await
                {
                    Ok(g) => g,
                    Err(e) if e.is_transient() || e == GoogleError::Unauthorized => {
                        return Err(google(e, "verifying access"))
                    }
                    Err(e) => {
                        tracing::info!(reason = %e, "testIamPermissions refused; counting every permission as missing");
                        Vec::new()
                    }
                };
                let missing: Vec<String> = CHECKED_PERMISSIONS
                    .iter()
                    .filter(|p| !granted.iter().any(|g| g == *p))
                    .map(|p| p.to_string())
                    .collect();
                let essential_missing = missing.iter().any(|p| p == ESSENTIAL_PERMISSION);
                if !essential_missing || tries >= w.iam_retries {
                    break missing;
                }
                tries += 1;
                self.report(
                    6,
                    progress_within(6, i, n),
                    &format!(
                        "{}: waiting for permissions on {} to propagate (retry {tries} of {})",
                        STEP_MESSAGES[6],
                        self.cp.name_of(id),
                        w.iam_retries
                    ),
                    false,
                )
                .await?;
                tokio::time::sleep(w.iam_retry_delay).await;
            };
            self.cp.access.insert(id.clone(), AccessOutcome { missing });
            self.report(
                6,
                progress_within(6, i + 1, n),
                &format!("{} ({} of {n})", STEP_MESSAGES[6], i + 1),
                true,
            )
            .await?;
        }
        if !candidates
            .iter()
            .any(|id| self.cp.access.get(id).is_some_and(AccessOutcome::ok))
        {
            return Err(StepError::permanent(format!(
                "your account cannot read any chosen project (missing {ESSENTIAL_PERMISSION} on {})",
                candidates.join(", ")
            )));
        }
        Ok(())
    }

    /// `p1: reason; p2: reason`.
    fn failures(&self, ids: &[String], reason: impl Fn(&str) -> Option<String>) -> String {
        ids.iter()
            .map(|id| format!("{id}: {}", reason(id).unwrap_or_else(|| "unknown".into())))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The chosen projects that passed steps 5 and 6, and those left out with the reason.
    fn kept_and_skipped(&self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for id in self.chosen() {
            let name = self.cp.name_of(&id);
            let apis = self.cp.apis.get(&id);
            let access = self.cp.access.get(&id);
            match (apis, access) {
                (Some(a), Some(acc)) if a.ok && acc.ok() => kept.push(serde_json::json!({
                    "projectId": id, "name": name, "missingPermissions": acc.missing,
                })),
                (Some(a), _) if !a.ok => skipped.push(serde_json::json!({
                    "projectId": id, "name": name, "reason": a.reason,
                })),
                (_, Some(acc)) => skipped.push(serde_json::json!({
                    "projectId": id, "name": name,
                    "reason": format!("missing permissions: {}", acc.missing.join(", ")),
                })),
                _ => skipped.push(serde_json::json!({
                    "projectId": id, "name": name, "reason": "not checked",
                })),
            }
        }
        (kept, skipped)
    }

    /// Step 7: the connection becomes `active` with the projects in its metadata; the task succeeds.
    async fn step_finish(&mut self) -> Result<(), StepError> {
        let conn = self.connection().await?;
        let (kept, skipped) = self.kept_and_skipped();
        let projects: Vec<serde_json::Value> = kept
            .iter()
            .map(|p| serde_json::json!({"projectId": p["projectId"], "name": p["name"]}))
            .collect();
        let ids: Vec<serde_json::Value> = kept.iter().map(|p| p["projectId"].clone()).collect();
        let mut metadata = match &conn.metadata {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        let now = Utc::now();
        metadata.insert("projects".into(), projects.clone().into());
        metadata.insert("projectIds".into(), ids.clone().into());
        metadata.insert(
            "defaultProjectId".into(),
            ids.first().cloned().unwrap_or_default(),
        );
        metadata.insert(
            "enabledApis".into(),
            serde_json::json!(self.c.cfg.required_apis),
        );
        metadata.insert("setupTaskId".into(), self.task.id.to_string().into());
        metadata.insert("setupCompletedAt".into(), now.to_rfc3339().into());
        if let Some(sub) = &self.cp.sub {
            metadata.insert("sub".into(), sub.clone().into());
        }
        let platform = &self.c.platform;
        platform
            .update_metadata(
                self.user(),
                conn.id,
                serde_json::Value::Object(metadata),
                conn.expires_at,
            )
            .await?
            .ok_or_else(|| {
                StepError::permanent("the Google Cloud connection was removed during setup")
            })?;
        // Each write tells every replica once; the credentials stay cached (the secret is unchanged).
        let updated = platform
            .update_status(
                self.user(),
                conn.id,
                StatusUpdate {
                    status: ConnectionStatus::Active,
                    status_reason: None,
                    last_validated_at: Some(now),
                },
            )
            .await?
            .ok_or_else(|| {
                StepError::permanent("the Google Cloud connection was removed during setup")
            })?;
        let n = projects.len();
        let result = serde_json::json!({
            "status": "success",
            "message": format!("Google Cloud connected with {n} project{}", if n == 1 { "" } else { "s" }),
            "connectionId": conn.id,
            "accountId": conn.account_id,
            "projects": kept,
            "skippedProjects": skipped,
            "enabledApis": self.c.cfg.required_apis,
            "selectedByUser": self.cp.selected_by_user,
        });
        self.cp.completed_step = TOTAL_STEPS;
        let outcome = SetupOutcome {
            state: SetupState::Success,
            progress: 100,
            status_message: format!(
                "Google Cloud is connected ({n} project{})",
                if n == 1 { "" } else { "s" }
            ),
            error: None,
            result: Some(result),
            input: Some(self.cp.to_json()),
        };
        if !platform
            .store()
            .finish_setup_task(self.task.id, &self.c.worker_id, outcome)
            .await?
        {
            return Err(StepError::LeaseLost);
        }
        if conn.status != ConnectionStatus::Active {
            self.c
                .platform
                .audit(
                    self.user(),
                    Some(&updated),
                    connector_core::AuditAction::SetupCompleted,
                    Actor::System,
                    serde_json::json!({"taskId": self.task.id, "projects": n}),
                )
                .await;
        }
        Ok(())
    }

    /// End the task in `FAILURE` and say so on the connection.
    async fn fail(&mut self, message: &str, refusal: bool) {
        tracing::warn!(task = %self.task.id, refusal, reason = message, "GCP setup task failed");
        let outcome = SetupOutcome {
            state: SetupState::Failure,
            progress: self.progress,
            status_message: "The Google Cloud setup failed".into(),
            error: Some(message.to_owned()),
            result: Some(serde_json::json!({"status": "failed", "error": message})),
            input: None,
        };
        // The connection first, the task second: a caller that reads FAILURE from the task then finds
        // the connection already marked. Only while this attempt still holds the lease, so a lost
        // lease changes nothing here (the attempt that holds it decides).
        match self
            .c
            .platform
            .store()
            .renew_setup_lease(self.task.id, &self.c.worker_id, self.lease_until())
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(task = %self.task.id, error = %e, "could not record a setup failure");
                return;
            }
        }
        if refusal {
            if let Ok(conn) = self.connection().await {
                self.c.mark_needs_reconnect(&conn, message).await;
            }
        } else if let Ok(conn) = self.connection().await {
            let reason = format!("the setup did not finish: {message}");
            if let Ok(Some(updated)) = self
                .c
                .platform
                .update_status(
                    self.user(),
                    conn.id,
                    StatusUpdate {
                        status: ConnectionStatus::Degraded,
                        status_reason: Some(reason.clone()),
                        last_validated_at: None,
                    },
                )
                .await
            {
                self.c
                    .platform
                    .audit(
                        self.user(),
                        Some(&updated),
                        connector_core::AuditAction::SetupFailed,
                        Actor::System,
                        serde_json::json!({"taskId": self.task.id, "reason": message}),
                    )
                    .await;
            }
        }
        if let Err(e) = self
            .c
            .platform
            .store()
            .finish_setup_task(self.task.id, &self.c.worker_id, outcome)
            .await
        {
            // The lease lapses and another attempt (or the attempt limit) ends it.
            tracing::error!(task = %self.task.id, error = %e, "could not record a setup failure");
        }
    }

    /// Give the lease back; the task is claimable again after a back-off.
    async fn retry_later(&mut self, message: &str, retry_after: Option<u64>) {
        let w = &self.c.cfg.worker;
        let exp = (self.task.attempts - 1).clamp(0, 10) as u32;
        let backoff = w
            .retry_delay
            .saturating_mul(2u32.saturating_pow(exp))
            .min(Duration::from_secs(60));
        let wait = backoff.max(Duration::from_secs(retry_after.unwrap_or(0).min(600)));
        let not_before = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let status = format!(
            "A temporary problem interrupted the setup ({message}); it resumes in {} s (attempt {} of {})",
            wait.as_secs().max(1),
            self.task.attempts,
            w.max_attempts
        );
        tracing::warn!(task = %self.task.id, attempt = self.task.attempts, reason = message, "GCP setup task will be retried");
        if let Err(e) = self
            .c
            .platform
            .store()
            .release_setup_task(self.task.id, &self.c.worker_id, not_before, &status)
            .await
        {
            tracing::error!(task = %self.task.id, error = %e, "could not release a setup task; its lease will lapse");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_monotonic_and_bounded() {
        assert_eq!(progress_at(0.0), 0);
        assert_eq!(progress_at(7.0), 100);
        assert_eq!(progress_at(9.0), 100);
        let mut last = -1;
        for step in 1..=TOTAL_STEPS {
            for i in 0..=4 {
                let p = progress_within(step, i, 4);
                assert!(p >= last, "step {step} item {i}: {p} < {last}");
                last = p;
            }
        }
        assert_eq!(progress_within(3, 0, 0), progress_at(3.0));
    }

    #[test]
    fn checkpoint_round_trip_and_eligibility() {
        let mut cp = Checkpoint::new(ConnectionId::new(), "a@example.com", Some("123"));
        cp.projects = vec![
            Project {
                project_id: "p1".into(),
                name: "One".into(),
                number: Some("1".into()),
            },
            Project {
                project_id: "p2".into(),
                name: "Two".into(),
                number: None,
            },
            Project {
                project_id: "p3".into(),
                name: "Three".into(),
                number: None,
            },
        ];
        cp.billing.insert("p1".into(), Some(true));
        cp.billing.insert("p2".into(), Some(false));
        cp.billing.insert("p3".into(), None);
        let ids: Vec<_> = cp.eligible().iter().map(|p| p.project_id.clone()).collect();
        assert_eq!(ids, ["p1"]);
        let back: Checkpoint = serde_json::from_value(cp.to_json()).unwrap();
        assert_eq!(back, cp);
        assert_eq!(
            project_list(&cp.eligible()),
            serde_json::json!([{"projectId": "p1", "name": "One"}])
        );
        // An older document without the later fields still decodes.
        let minimal: Checkpoint = serde_json::from_value(serde_json::json!({
            "connectionId": ConnectionId::new(), "accountId": "x"
        }))
        .unwrap();
        assert_eq!(minimal.completed_step, 0);
    }

    #[test]
    fn errors_classify() {
        assert!(matches!(
            StepError::from(ConnectorError::CredentialsRejected("x".into())),
            StepError::Permanent { refusal: true, .. }
        ));
        assert!(matches!(
            StepError::from(ConnectorError::RateLimited {
                message: "m".into(),
                retry_after_secs: 9
            }),
            StepError::Transient {
                retry_after: Some(9),
                ..
            }
        ));
        assert!(matches!(
            StepError::from(StoreError::Unavailable("x".into())),
            StepError::Transient { .. }
        ));
        assert!(matches!(
            google(GoogleError::Denied(None), "x"),
            StepError::Permanent { refusal: false, .. }
        ));
        assert!(AccessOutcome {
            missing: vec!["compute.instances.list".into()]
        }
        .ok());
        assert!(!AccessOutcome {
            missing: vec![ESSENTIAL_PERMISSION.into()]
        }
        .ok());
    }
}
