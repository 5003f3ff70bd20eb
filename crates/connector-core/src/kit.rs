//! The provider kit: what every provider plugin needs and once wrote for itself — its API base URL
//! setting checked, a provider's `Retry-After` read, the disconnect route's "this connection, or
//! all of them", its self-description, the credentials it hands out, the format checks of its
//! request fields, and the OpenAPI pieces its routes share. The macros of the kit
//! ([`crate::provider_connector!`], [`crate::connector_routes!`], [`crate::disconnect_route!`]) are
//! in `kit_macros.rs`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::connector::{AuthKind, Capability, Connector, IssuedCredentials, ProviderInfo};
use crate::error::{ApiError, ConnectorError};
use crate::http::{
    non_blank, only_query_keys, parse_connection_id, query_connection_id, read_optional_body,
    Caller,
};
use crate::ids::{ProviderId, UserId};
use crate::metrics::Metrics;
use crate::platform::{Actor, Platform};
use crate::plugin::BuildError;
use crate::secret::SecretValue;
use crate::settings::ApiSettings;
use crate::store::ConnectionRecord;

/// Wait this long when a provider asks to slow down without saying how long.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 30;
/// Never ask a caller to wait longer than this, whatever the provider says.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// Check an API base URL setting (`AURORA_<PROVIDER>_API_URL`, …): `http` or `https`, a host, no
/// query, no fragment, no credentials. A trailing `/` is ignored; a path prefix is kept. The error
/// completes a sentence that starts with the setting's name.
pub fn parse_base_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(url)
}

/// Seconds to wait from a provider's `Retry-After` header (delta-seconds or an HTTP date), within
/// 1..=[`MAX_RETRY_AFTER_SECS`]; [`DEFAULT_RETRY_AFTER_SECS`] when absent or unreadable.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    let Some(raw) = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    else {
        return DEFAULT_RETRY_AFTER_SECS;
    };
    let raw = raw.trim();
    let secs = if let Ok(n) = raw.parse::<u64>() {
        n
    } else if let Ok(at) = DateTime::parse_from_rfc2822(raw) {
        (at.with_timezone(&Utc) - Utc::now()).num_seconds().max(1) as u64
    } else {
        DEFAULT_RETRY_AFTER_SECS
    };
    secs.clamp(1, MAX_RETRY_AFTER_SECS)
}

/// The optional body of a provider's disconnect route. Unknown fields and a blank `connectionId` are
/// refused: a misspelled or empty filter must never widen a disconnect to every connection.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Remove only this connection.
    #[serde(default, alias = "connection_id", deserialize_with = "non_blank")]
    #[schema(format = Uuid)]
    pub connection_id: Option<String>,
    /// When given, must equal the `X-User-ID` header.
    #[serde(default, alias = "user_id")]
    pub user_id: Option<String>,
}

/// The body of a disconnect route, as [`disconnect_one_or_all`] reads it: the kit's own
/// [`DisconnectRequest`], or a provider's that can also name the provider-side account (an Azure
/// subscription).
pub trait DisconnectBody: serde::de::DeserializeOwned {
    /// `connectionId`, if given.
    fn connection_id(&self) -> Option<&str>;
    /// `userId`, if given (must be the caller).
    fn user_id(&self) -> Option<&str>;
    /// The connection's `accountId` this body names, checked (400 when malformed); `None` when it
    /// names none. Default: none.
    fn account_id(&self) -> Result<Option<String>, ApiError> {
        Ok(None)
    }
}

impl DisconnectBody for DisconnectRequest {
    fn connection_id(&self) -> Option<&str> {
        self.connection_id.as_deref()
    }
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

/// A disconnect route: the connection named by `connectionId` (body or query; both must agree) of
/// the caller and this connector's provider, or the one of the account the body names (both: they
/// must be the same connection), else every connection of the caller with it. Returns how many were
/// removed. `what` names the provider in the 404 ("no such Scaleway connection").
pub async fn disconnect_one_or_all<B: DisconnectBody>(
    platform: &Platform,
    connector: &dyn Connector,
    caller: &Caller,
    req: &HttpRequest,
    payload: web::Payload,
    what: &str,
) -> Result<usize, ApiError> {
    only_query_keys(req, &["connectionId", "connection_id"])?;
    let body = read_optional_body::<B>(payload).await?;
    if let Some(b) = &body {
        caller.bind_owner(b.user_id())?;
    }
    let account = match &body {
        Some(b) => b.account_id()?,
        None => None,
    };
    let from_body = body
        .as_ref()
        .and_then(|b| b.connection_id())
        .map(str::to_owned);
    let from_query = query_connection_id(req)?;
    let raw = match (from_body, from_query) {
        (Some(a), Some(b)) if !a.trim().eq_ignore_ascii_case(&b) => {
            return Err(ApiError::invalid_request(
                "connectionId differs between the body and the query string",
            ))
        }
        (a, b) => a.or(b),
    };
    let provider = connector.info().id;
    match (raw, account) {
        (Some(raw), account) => {
            let id = parse_connection_id(&raw)?;
            let conn = platform
                .owned_connection_of(&caller.user, id, &provider, what)
                .await?;
            if account.is_some_and(|a| a != conn.account_id) {
                return Err(ApiError::invalid_request(
                    "the account named in the body is not the account of connectionId",
                ));
            }
            platform.disconnect(connector, &conn, Actor::User).await?;
            Ok(1)
        }
        (None, Some(account)) => {
            let conn = platform
                .store()
                .find_connection(&caller.user, &provider, &account)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("no {what} connection of that account"))
                })?;
            platform.disconnect(connector, &conn, Actor::User).await?;
            Ok(1)
        }
        (None, None) => {
            platform
                .disconnect_all(connector, &caller.user, Actor::User)
                .await
        }
    }
}

impl ProviderInfo {
    /// A provider's self-description with no open path (no route of it goes without a caller):
    /// `connect_paths` are the routes that connect an account (rate-limited per user).
    pub fn new(
        id: ProviderId,
        display_name: &str,
        auth_kind: AuthKind,
        capabilities: &[Capability],
        connect_paths: &[&'static str],
    ) -> Self {
        Self {
            id,
            display_name: display_name.into(),
            auth_kind,
            capabilities: capabilities.to_vec(),
            open_paths: Vec::new(),
            connect_paths: connect_paths.to_vec(),
        }
    }
}

/// Credentials to hand out: the provider's credentials document `doc` (§7), encoded, valid until
/// `expires_at` (`None`: no expiry), with no replacement of the stored secret. A document that does
/// not encode is an internal error (500).
pub fn issued<T: Serialize>(
    doc: &T,
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedCredentials, ConnectorError> {
    let credentials =
        SecretValue::encode(doc).map_err(|_| ConnectorError::Api(ApiError::internal()))?;
    Ok(IssuedCredentials {
        credentials,
        expires_at,
        updated_secret: None,
    })
}

/// A present, non-blank optional field, trimmed.
pub fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// A hyphenated UUID or GUID (8-4-4-4-12 hexadecimal digits), in either case.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A required request field, trimmed: 400 `invalid_request` "`{field} is required`" when it is
/// blank, else 400 with `rule` (which names the field) when `valid` refuses it. The message never
/// repeats the value.
pub fn required<'a>(
    value: &'a str,
    field: &str,
    valid: impl FnOnce(&str) -> bool,
    rule: &str,
) -> Result<&'a str, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid_request(format!("{field} is required")));
    }
    if !valid(v) {
        return Err(ApiError::invalid_request(rule));
    }
    Ok(v)
}

/// [`required`] for a secret field: the trimmed secret, never quoted in a message.
pub fn required_secret<'a>(
    value: &'a SecretString,
    field: &str,
    valid: impl FnOnce(&str) -> bool,
    rule: &str,
) -> Result<&'a str, ApiError> {
    required(value.expose_secret(), field, valid, rule)
}

/// The caller's identity header of a provider route, for the `params(...)` of its
/// `#[utoipa::path]`: `params(CallerHeader)` documents `X-User-ID` as a required string header.
pub struct CallerHeader;

impl utoipa::IntoParams for CallerHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{Required, Type};
        vec![ParameterBuilder::new()
            .name("X-User-ID")
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some("The caller's user id"))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new().schema_type(Type::String),
            ))
            .build()]
    }
}

/// The caller's connection with `provider` that `connectionId` (query) names, else their most
/// recently updated one ([`Platform::pick_connection`]: 404 naming `what`, or `none` when they have
/// none).
pub async fn pick_connection(
    platform: &Platform,
    req: &HttpRequest,
    user: &UserId,
    provider: &ProviderId,
    what: &str,
    none: &str,
) -> Result<ConnectionRecord, ApiError> {
    let id = query_connection_id(req)?
        .as_deref()
        .map(parse_connection_id)
        .transpose()?;
    platform
        .pick_connection(user, id, provider, what, none)
        .await
}

/// A connection's display name: `name` unless it is blank, else `fallback` (its account id).
pub fn display_name_or(name: &str, fallback: &str) -> String {
    if name.trim().is_empty() {
        fallback
    } else {
        name
    }
    .to_owned()
}

/// A provider's API client from its settings under `prefix` (`AURORA_SCALEWAY_`): `API_URL`, else
/// `default_url`, and `TIMEOUT_SECS` ([`ApiSettings`](crate::settings::ApiSettings)), handed to `new`
/// with the platform's HTTP client and metrics. `new`'s error completes a sentence that starts with
/// the URL setting's name.
pub fn api_client<C>(
    platform: &Platform,
    prefix: &str,
    default_url: &str,
    new: impl FnOnce(&str, reqwest::Client, Arc<Metrics>, Duration) -> Result<C, String>,
) -> Result<C, BuildError> {
    let api: ApiSettings = platform.settings().extract(prefix).map_err(BuildError)?;
    let url = api.api_url.as_deref().unwrap_or(default_url);
    new(
        url,
        platform.http().clone(),
        platform.metrics().clone(),
        api.timeout,
    )
    .map_err(|e| BuildError(format!("{prefix}API_URL {e}")))
}

/// The refusals every route that reads a caller's JSON body shares (401, 403 `user_mismatch`, 413,
/// 503), for the `responses(...)` of its `#[utoipa::path]`: `responses((status = 200, …), BodyRefusals)`.
#[derive(utoipa::IntoResponses)]
pub enum BodyRefusals {
    #[response(status = 401, description = "Missing or malformed caller identity")]
    Unauthenticated(crate::error::ErrorBody),
    #[response(
        status = 403,
        description = "`userId` in the body is not the caller (`user_mismatch`)"
    )]
    UserMismatch(crate::error::ErrorBody),
    #[response(status = 413, description = "Body above 64 KiB")]
    TooLarge(crate::error::ErrorBody),
    #[response(status = 503, description = "Database or secret store unavailable")]
    Unavailable(crate::error::ErrorBody),
}

type Answers =
    std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>>;

/// An answer with an [`ErrorBody`](crate::error::ErrorBody), as `(status = …, description = …,
/// body = ErrorBody)` documents it.
fn error_answer(
    description: impl Into<String>,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// The 401 of every route that needs a caller, for the `responses(...)` of its `#[utoipa::path]`
/// when it documents nothing else of [`CallerRefusals`] or [`BodyRefusals`].
pub struct Unauthenticated;

/// [`Unauthenticated`]'s description.
const UNAUTHENTICATED: &str = "Missing or malformed caller identity";

impl utoipa::IntoResponses for Unauthenticated {
    fn responses() -> Answers {
        [("401".to_owned(), error_answer(UNAUTHENTICATED))].into()
    }
}

/// The refusals of a route that reads a caller's JSON body before it reaches a backend: 401, 403
/// `user_mismatch` and 413, as in [`BodyRefusals`], for a route that documents its own 503.
pub struct CallerRefusals;

impl utoipa::IntoResponses for CallerRefusals {
    fn responses() -> Answers {
        [
            ("401", UNAUTHENTICATED),
            (
                "403",
                "`userId` in the body is not the caller (`user_mismatch`)",
            ),
            ("413", "Body above 64 KiB"),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), error_answer(description)))
        .collect()
    }
}

/// A provider's name as its routes' documentation says it (`Scaleway`, `Azure`).
pub trait ProviderName {
    const NAME: &'static str;
}

/// The answers of a route that calls the provider when the provider throttles (429
/// `rate_limited`) or fails (502 `provider_unavailable`), for the `responses(...)` of its
/// `#[utoipa::path]`: `responses((status = 200, …), UpstreamRefusals<ScalewayConnector>)`.
pub struct UpstreamRefusals<P>(std::marker::PhantomData<P>);

impl<P: ProviderName> utoipa::IntoResponses for UpstreamRefusals<P> {
    fn responses() -> Answers {
        let error = error_answer;
        let name = P::NAME;
        [
            (
                "429".to_owned(),
                error(format!(
                    "{name} throttled the gateway (`rate_limited`, with Retry-After)"
                )),
            ),
            (
                "502".to_owned(),
                error(format!(
                    "{name} timed out, answered 5xx or could not be reached (`provider_unavailable`)"
                )),
            ),
        ]
        .into()
    }
}

/// The parameters of a route that reads one of the caller's connections with the provider `P`
/// ([`pick_connection`]): `X-User-ID` and the optional `connectionId` query, for the `params(...)` of
/// its `#[utoipa::path]`: `params(PickParams<ScalewayConnector>)`.
pub struct PickParams<P>(std::marker::PhantomData<P>);

impl<P: ProviderName> utoipa::IntoParams for PickParams<P> {
    fn into_params(
        in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{KnownFormat, ObjectBuilder, Required, SchemaFormat, Type};
        let mut params = CallerHeader::into_params(in_provider);
        let uuid = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
        params.push(
            ParameterBuilder::new()
                .name("connectionId")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(format!(
                    "Which {} connection; by default the most recently updated one",
                    P::NAME
                )))
                .schema(Some(uuid))
                .build(),
        );
        params
    }
}

/// The refusals of a route that reads one of the caller's connections with the provider `P`
/// ([`pick_connection`]): 400 (a malformed `connectionId`), 401, 404 and 503, for the
/// `responses(...)` of its `#[utoipa::path]`.
pub struct PickRefusals<P>(std::marker::PhantomData<P>);

impl<P: ProviderName> utoipa::IntoResponses for PickRefusals<P> {
    fn responses() -> Answers {
        let no_such = format!("No such {} connection of the caller", P::NAME);
        [
            ("400", "Malformed connectionId".to_owned()),
            ("401", UNAUTHENTICATED.to_owned()),
            ("404", no_such),
            ("503", "Database or secret store unavailable".to_owned()),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), error_answer(description)))
        .collect()
    }
}

/// What the kit's macros name from the crates the core depends on.
#[doc(hidden)]
pub mod __private {
    pub use actix_web;
    pub use reqwest;
    pub use utoipa;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_or_falls_back_on_a_blank_name() {
        assert_eq!(display_name_or("Prod", "org-1"), "Prod");
        assert_eq!(display_name_or(" ", "org-1"), "org-1");
        assert_eq!(display_name_or("", "org-1"), "org-1");
    }
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn body_refusals_document_four_error_bodies() {
        use utoipa::IntoResponses;
        let r = BodyRefusals::responses();
        assert_eq!(
            r.keys().map(String::as_str).collect::<Vec<_>>(),
            ["401", "403", "413", "503"]
        );
        for (status, resp) in r {
            let json = serde_json::to_value(&resp).unwrap();
            assert_eq!(
                json["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{status}: {json}"
            );
        }
    }

    #[test]
    fn base_url_rules() {
        assert!(parse_base_url("https://api.example.com").is_ok());
        assert_eq!(
            parse_base_url(" http://127.0.0.1:9/prefix/ ")
                .unwrap()
                .path(),
            "/prefix/"
        );
        for bad in [
            "ftp://x",
            "not a url",
            "https://x?q=1",
            "https://x#f",
            "https://u:p@x",
            "file:///etc",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), DEFAULT_RETRY_AFTER_SECS);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), 7);
        h.insert(RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(retry_after(&h), 1);
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h), MAX_RETRY_AFTER_SECS);
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), DEFAULT_RETRY_AFTER_SECS);
        let later = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert!(
            (100..=121).contains(&retry_after(&h)),
            "{}",
            retry_after(&h)
        );
    }

    #[test]
    fn disconnect_bodies_refuse_unknown_and_blank_filters() {
        use crate::http::parse_optional_body;
        assert!(parse_optional_body::<DisconnectRequest>(b"")
            .unwrap()
            .is_none());
        let b = parse_optional_body::<DisconnectRequest>(br#"{"connection_id":"x","userId":"u"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(b.connection_id.as_deref(), Some("x"));
        assert!(parse_optional_body::<DisconnectRequest>(br#"{"connectionId":""}"#).is_err());
        assert!(parse_optional_body::<DisconnectRequest>(br#"{"connectionID":"x"}"#).is_err());
    }
}
