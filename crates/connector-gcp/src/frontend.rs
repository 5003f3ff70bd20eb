//! How Aurora's frontend shows a Google Cloud connection (§9.1): the Google account's e-mail and the
//! kind of grant (`authType`).

use connector_core::frontend::FrontendSummary;
use connector_core::{ConnectionRecord, ProviderInfo};

/// The grant of an OAuth connection (a service-account connection would say `service_account`).
const AUTH_TYPE: &str = "oauth";

pub(crate) fn summary(info: &ProviderInfo, conn: &ConnectionRecord) -> FrontendSummary {
    let email = conn.account_id.as_str();
    let mut s = FrontendSummary::named(info, "Google Cloud", email)
        .account_field("email", email)
        .account_field("authType", AUTH_TYPE)
        .status_field("authType", AUTH_TYPE)
        .status_field("canExecute", true);
    s.token.email = Some(email.to_owned());
    s
}
