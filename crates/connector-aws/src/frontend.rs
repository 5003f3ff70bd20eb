//! How Aurora's frontend shows an AWS connection (§9.1): the account and role, and whether the role
//! can act (`canExecute`: a role that is not the read-only one).

use connector_core::frontend::{meta_str, FrontendSummary};
use connector_core::{ConnectionRecord, ProviderInfo};

pub(crate) fn summary(info: &ProviderInfo, conn: &ConnectionRecord) -> FrontendSummary {
    let role = meta_str(conn, "roleArn");
    let can_execute = role.is_some() && role != meta_str(conn, "readOnlyRoleArn");
    let text = format!("Account {}", conn.account_id);
    let mut s = FrontendSummary::named(info, "AWS Account", &text)
        .account_field("accountId", conn.account_id.as_str())
        .account_field("roleArn", role.unwrap_or_default())
        .status_field("canExecute", can_execute);
    s.token.subscription_id = Some(conn.account_id.clone());
    s
}
