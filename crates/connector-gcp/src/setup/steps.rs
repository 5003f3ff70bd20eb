//! Steps 1 to 4 of a setup: identity, projects, billing, and the projects chosen.

use super::*;

impl TaskRun<'_> {
    /// Step 1: the grant works and belongs to the account the connection names.
    pub(super) async fn step_identity(&mut self) -> Result<(), StepError> {
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
    pub(super) async fn step_projects(&mut self) -> Result<(), StepError> {
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
    pub(super) async fn step_billing(&mut self) -> Result<(), StepError> {
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
    pub(super) async fn step_choose(&mut self) -> Result<bool, StepError> {
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

    pub(super) fn chosen(&self) -> Vec<String> {
        self.cp.chosen.clone().unwrap_or_default()
    }
}
