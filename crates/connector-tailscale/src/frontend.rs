//! How Aurora's frontend shows a Tailscale connection (§9.1): the tailnet.

use connector_core::frontend::{meta_str, FrontendSummary};
use connector_core::{ConnectionRecord, ProviderInfo};

pub(crate) fn summary(info: &ProviderInfo, conn: &ConnectionRecord) -> FrontendSummary {
    // The tailnet as API paths take it (`-`: the client's own), and the name it was connected as.
    let tailnet = meta_str(conn, "tailnet").unwrap_or(conn.account_id.as_str());
    let name = conn.account_id.as_str();
    let mut s = FrontendSummary::named(info, "Tailscale", name).status_field("tailnet", name);
    s.token.subscription_id = Some(tailnet.to_owned());
    s.token.subscription_name = Some(name.to_owned());
    s
}
