//! How Aurora's frontend shows an Azure connection (§9.1): the subscription, and the tenant and
//! application in `user_tokens`; never a secret.

use connector_core::frontend::{meta_str, FrontendSummary};
use connector_core::{ConnectionRecord, ProviderInfo};

pub(crate) fn summary(info: &ProviderInfo, conn: &ConnectionRecord) -> FrontendSummary {
    let sub_name = meta_str(conn, "subscriptionName");
    let mut s = FrontendSummary::named(
        info,
        sub_name.unwrap_or("Azure"),
        sub_name.unwrap_or("Azure Subscription"),
    )
    .account_field("subscriptionId", conn.account_id.as_str())
    .account_field("subscriptionName", sub_name)
    .status_field("canExecute", true);
    s.token.subscription_id = Some(conn.account_id.clone());
    s.token.subscription_name = sub_name.map(str::to_owned);
    s.token.tenant_id = meta_str(conn, "tenantId").map(str::to_owned);
    s.token.client_id = meta_str(conn, "clientId").map(str::to_owned);
    s
}
