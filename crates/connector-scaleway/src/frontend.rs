//! How Aurora's frontend shows a Scaleway connection (§9.1): the project, else the organization;
//! never the access key.

use connector_core::frontend::{meta_str, FrontendSummary};
use connector_core::{ConnectionRecord, ProviderInfo};

pub(crate) fn summary(info: &ProviderInfo, conn: &ConnectionRecord) -> FrontendSummary {
    let org = meta_str(conn, "organizationId");
    let project = meta_str(conn, "projectId");
    let text = project.or(org).unwrap_or(conn.account_id.as_str());
    let mut s = FrontendSummary::named(info, "Scaleway", text);
    s.token.subscription_id = Some(org.unwrap_or(conn.account_id.as_str()).to_owned());
    s.token.subscription_name = meta_str(conn, "projectName").or(project).map(str::to_owned);
    s
}
