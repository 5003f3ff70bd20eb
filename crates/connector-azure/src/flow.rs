//! The provider side of a login, without storage: get a token for each principal, list every
//! subscription, choose one. Kept apart from the route so it can be tested against stubbed endpoints.

use connector_core::{ApiError, ConnectorError};

use crate::client::{AccessToken, AzureClient, Role, Subscription};
use crate::input::LoginInput;

/// What the provider told us about a login that works.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub subscription: Subscription,
    /// How many subscriptions the principal can see (every state).
    pub subscriptions_count: usize,
}

/// The subscription to use: the requested id (it must be listed and `Enabled`), else the enabled one
/// named `name`, else the first enabled one.
pub fn choose_subscription<'a>(
    subscriptions: &'a [Subscription],
    requested_id: Option<&str>,
    requested_name: Option<&str>,
) -> Result<&'a Subscription, ApiError> {
    if let Some(id) = requested_id {
        let s = subscriptions
            .iter()
            .find(|s| s.subscription_id.eq_ignore_ascii_case(id))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "subscription {id} does not exist, or the service principal has no role on it; \
                     give the service principal a role (for example Reader) on the subscription"
                ))
            })?;
        if !s.is_enabled() {
            return Err(ApiError::invalid_request(format!(
                "subscription {id} is {} at Azure; only an Enabled subscription can be connected",
                state_word(&s.state)
            )));
        }
        return Ok(s);
    }
    if let Some(name) = requested_name {
        let named: Vec<&Subscription> = subscriptions
            .iter()
            .filter(|s| s.display_name.trim().eq_ignore_ascii_case(name))
            .collect();
        if named.is_empty() {
            return Err(ApiError::invalid_request(
                "no subscription visible to the service principal has the name given in subscriptionName",
            ));
        }
        return named.into_iter().find(|s| s.is_enabled()).ok_or_else(|| {
            ApiError::invalid_request(
                "the subscription named in subscriptionName is not Enabled at Azure; only an Enabled subscription can be connected",
            )
        });
    }
    if subscriptions.is_empty() {
        return Err(ApiError::invalid_request(
            "the service principal can see no subscription; give it a role (for example Reader) \
             on the subscription to connect",
        ));
    }
    subscriptions
        .iter()
        .find(|s| s.is_enabled())
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "none of the {} subscriptions the service principal can see is Enabled",
                subscriptions.len()
            ))
        })
}

fn state_word(state: &str) -> &str {
    if state.trim().is_empty() {
        "in an unknown state"
    } else {
        state
    }
}

/// Run the provider side of a login: token and subscriptions of the main principal, the choice, and
/// (when given) a token of the read-only principal that must see the chosen subscription.
pub async fn resolve(client: &AzureClient, input: &LoginInput) -> Result<Resolved, ApiError> {
    let token = client
        .token(
            Role::Main,
            &input.tenant_id,
            &input.principal.client_id,
            &input.principal.client_secret,
        )
        .await?;
    let subscriptions = client.list_subscriptions(&token).await?;
    let subscription = choose_subscription(
        &subscriptions,
        input.subscription_id.as_deref(),
        input.subscription_name.as_deref(),
    )?
    .clone();
    if let Some(ro) = &input.read_only {
        let ro_token = client
            .token(
                Role::ReadOnly,
                &input.tenant_id,
                &ro.client_id,
                &ro.client_secret,
            )
            .await?;
        check_read_only_sees(client, &ro_token, &subscription.subscription_id).await?;
    }
    Ok(Resolved {
        subscription,
        subscriptions_count: subscriptions.len(),
    })
}

/// The read-only principal must see the connection's subscription.
pub async fn check_read_only_sees(
    client: &AzureClient,
    token: &AccessToken,
    subscription_id: &str,
) -> Result<(), ConnectorError> {
    match client.get_subscription(token, subscription_id).await? {
        Some(_) => Ok(()),
        None => Err(ConnectorError::InvalidRequest(format!(
            "the read-only service principal (readOnlyCredentials) has no role on subscription \
             {subscription_id}; give it the Reader role there"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, name: &str, state: &str) -> Subscription {
        Subscription {
            subscription_id: id.into(),
            display_name: name.into(),
            state: state.into(),
            tenant_id: None,
        }
    }

    #[test]
    fn subscription_choice() {
        let subs = vec![
            s("a", "Dev", "Disabled"),
            s("b", "Prod", "Enabled"),
            s("c", "Test", "Enabled"),
        ];
        assert_eq!(
            choose_subscription(&subs, None, None)
                .unwrap()
                .subscription_id,
            "b"
        );
        assert_eq!(
            choose_subscription(&subs, Some("C"), None)
                .unwrap()
                .subscription_id,
            "c"
        );
        assert_eq!(
            choose_subscription(&subs, None, Some("test"))
                .unwrap()
                .subscription_id,
            "c"
        );
        // The id wins over the name.
        assert_eq!(
            choose_subscription(&subs, Some("b"), Some("Test"))
                .unwrap()
                .subscription_id,
            "b"
        );
        let e = choose_subscription(&subs, Some("a"), None).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.message.contains("Disabled"), "{}", e.message);
        let e = choose_subscription(&subs, Some("zz"), None).unwrap_err();
        assert!(e.message.contains("does not exist"), "{}", e.message);
        assert!(choose_subscription(&subs, None, Some("Dev")).is_err());
        assert!(choose_subscription(&subs, None, Some("nope")).is_err());
        let e = choose_subscription(&[], None, None).unwrap_err();
        assert!(e.message.contains("no subscription"), "{}", e.message);
        let e = choose_subscription(&subs[..1], None, None).unwrap_err();
        assert!(e.message.contains("none of the 1"), "{}", e.message);
    }
}
