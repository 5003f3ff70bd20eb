//! The provider kit: what every provider plugin needs and once wrote for itself — its API base URL
//! setting checked, a provider's `Retry-After` read, and the disconnect route's "this connection, or
//! all of them".

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::connector::Connector;
use crate::error::ApiError;
use crate::http::{
    non_blank, only_query_keys, parse_connection_id, query_connection_id, read_optional_body,
    Caller,
};
use crate::platform::{Actor, Platform};

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

#[cfg(test)]
mod tests {
    use super::*;
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
