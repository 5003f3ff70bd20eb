//! Steps 5 and 6 of a setup: enabling the required APIs and verifying access on each chosen project.

use super::*;

impl TaskRun<'_> {
    /// Step 5: `batchEnable` of the required APIs on each chosen project, waiting for its operation.
    pub(super) async fn step_enable_apis(&mut self) -> Result<(), StepError> {
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

    pub(super) async fn wait_operation(
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
    pub(super) async fn step_verify_access(&mut self) -> Result<(), StepError> {
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
    pub(super) fn failures(
        &self,
        ids: &[String],
        reason: impl Fn(&str) -> Option<String>,
    ) -> String {
        ids.iter()
            .map(|id| format!("{id}: {}", reason(id).unwrap_or_else(|| "unknown".into())))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The chosen projects that passed steps 5 and 6, and those left out with the reason.
    pub(super) fn kept_and_skipped(&self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
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
}
