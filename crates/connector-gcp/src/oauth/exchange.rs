//! `OAuthClient`: the code exchange, refresh, revocation and user-info calls, with their errors classified.

use super::*;

/// The OAuth calls against Google's (or the configured) endpoints.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    metrics: std::sync::Arc<Metrics>,
    cfg: std::sync::Arc<GcpConfig>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.cfg.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    pub fn new(
        http: reqwest::Client,
        metrics: std::sync::Arc<Metrics>,
        cfg: std::sync::Arc<GcpConfig>,
    ) -> Self {
        Self { http, metrics, cfg }
    }

    fn record(&self, op: &str, ok: bool, started: Instant) {
        self.metrics.provider_call(
            PROVIDER,
            op,
            if ok { "ok" } else { "error" },
            started.elapsed(),
        );
    }

    fn transport(&self, op: &str, e: &reqwest::Error) -> ConnectorError {
        tracing::warn!(operation = op, timeout = e.is_timeout(), error = %e, "Google OAuth call failed");
        if e.is_timeout() {
            ConnectorError::ProviderUnavailable(format!(
                "Google did not answer within {} seconds; try again shortly",
                self.cfg.timeout.as_secs()
            ))
        } else {
            ConnectorError::ProviderUnavailable(
                "could not reach Google's sign-in service; try again shortly".into(),
            )
        }
    }

    async fn token_request(
        &self,
        op: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, ConnectorError> {
        let started = Instant::now();
        let res = self.token_request_inner(op, form).await;
        self.record(op, res.is_ok(), started);
        res
    }

    async fn token_request_inner(
        &self,
        op: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, ConnectorError> {
        let resp = self
            .http
            .post(self.cfg.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(form)
            .timeout(self.cfg.timeout)
            .send()
            .await
            .map_err(|e| self.transport(op, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = Zeroizing::new(
            resp.bytes()
                .await
                .map_err(|e| self.transport(op, &e))?
                .to_vec(),
        );
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                tracing::warn!(operation = op, category = ?e.classify(), "undecodable token answer from Google");
                ConnectorError::ProviderUnavailable(
                    "Google's token answer could not be read; try again later".into(),
                )
            });
        }
        let code = oauth_error_code(&body);
        tracing::warn!(
            operation = op,
            status = status.as_u16(),
            error_code = code.as_deref().unwrap_or("-"),
            "Google refused a token request"
        );
        Err(token_error(status, code.as_deref(), &headers))
    }

    /// Exchange an authorization code, with the PKCE verifier and the redirect URI of the login.
    pub async fn exchange_code(
        &self,
        client: &OAuthClientConfig,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ConnectorError> {
        self.token_request(
            "exchange_code",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", &client.client_id),
                ("client_secret", client.client_secret.expose_secret()),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// A new access token from the refresh token. `invalid_grant` is a refusal (the grant was
    /// revoked or expired): the connection needs a reconnect.
    pub async fn refresh(
        &self,
        client: &OAuthClientConfig,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, ConnectorError> {
        self.token_request(
            "refresh_token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("client_id", &client.client_id),
                ("client_secret", client.client_secret.expose_secret()),
            ],
        )
        .await
    }

    /// Revoke a token (the refresh token revokes the whole grant). A token Google no longer knows
    /// (`invalid_token`) counts as revoked.
    pub async fn revoke(&self, token: &SecretString) -> Result<(), ConnectorError> {
        let started = Instant::now();
        let res = async {
            let resp = self
                .http
                .post(self.cfg.revoke_url.clone())
                .form(&[("token", token.expose_secret())])
                .timeout(self.cfg.timeout)
                .send()
                .await
                .map_err(|e| self.transport("revoke", &e))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let body = resp.bytes().await.unwrap_or_default();
            let code = oauth_error_code(&body);
            if status == StatusCode::BAD_REQUEST && code.as_deref() == Some("invalid_token") {
                return Ok(());
            }
            tracing::warn!(
                status = status.as_u16(),
                error_code = code.as_deref().unwrap_or("-"),
                "Google refused the revocation"
            );
            Err(ConnectorError::ProviderUnavailable(format!(
                "Google did not revoke the token (HTTP {})",
                status.as_u16()
            )))
        }
        .await;
        self.record("revoke", res.is_ok(), started);
        res
    }

    /// The account behind an access token: userinfo, then the id_token's claims for a missing
    /// e-mail (oauth2-mock-server answers only `sub`).
    pub async fn identity(
        &self,
        access_token: &SecretString,
        id_token: Option<&SecretString>,
        client_id: &str,
    ) -> Result<Identity, ConnectorError> {
        let started = Instant::now();
        let res = self.userinfo(access_token).await;
        self.record("userinfo", res.is_ok(), started);
        let info = res?;
        let from_id = id_token.and_then(|t| id_token_identity(t.expose_secret(), client_id));
        let sub = info
            .sub
            .filter(|s| !s.is_empty())
            .or_else(|| from_id.as_ref().map(|i| i.sub.clone()))
            .ok_or_else(|| {
                ConnectorError::ProviderUnavailable(
                    "Google did not say which account signed in; try again".into(),
                )
            })?;
        let email = info
            .email
            .filter(|e| !e.trim().is_empty())
            .or_else(|| from_id.and_then(|i| i.email));
        Ok(Identity { sub, email })
    }

    async fn userinfo(&self, access_token: &SecretString) -> Result<UserInfo, ConnectorError> {
        let mut auth = reqwest::header::HeaderValue::from_str(&format!(
            "Bearer {}",
            access_token.expose_secret()
        ))
        .map_err(|_| {
            ConnectorError::CredentialsRejected(
                "Google returned an access token that cannot be used".into(),
            )
        })?;
        auth.set_sensitive(true);
        let resp = self
            .http
            .get(self.cfg.userinfo_url.clone())
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .timeout(self.cfg.timeout)
            .send()
            .await
            .map_err(|e| self.transport("userinfo", &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ConnectorError::CredentialsRejected(
                "Google refused the access token when reading the account's identity; reconnect the Google account".into(),
            ));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let secs = retry_after(resp.headers());
            return Err(ConnectorError::RateLimited {
                message: format!(
                    "Google is limiting the request rate; try again in {secs} seconds"
                ),
                retry_after_secs: secs,
            });
        }
        if !status.is_success() {
            tracing::warn!(
                status = status.as_u16(),
                "userinfo answered with an error status"
            );
            return Err(ConnectorError::ProviderUnavailable(format!(
                "Google's userinfo endpoint answered HTTP {}; try again shortly",
                status.as_u16()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport("userinfo", &e))?;
        serde_json::from_slice(&body).map_err(|_| {
            ConnectorError::ProviderUnavailable(
                "Google's userinfo answer could not be read; try again later".into(),
            )
        })
    }
}

/// What a refused token request means.
pub(super) fn token_error(
    status: StatusCode,
    code: Option<&str>,
    headers: &reqwest::header::HeaderMap,
) -> ConnectorError {
    match (status, code) {
        (_, Some("invalid_grant")) => ConnectorError::CredentialsRejected(
            "Google refused the stored authorization (invalid_grant): it was revoked, expired, or \
             the account's password changed. Reconnect the Google account"
                .into(),
        ),
        (_, Some("invalid_client" | "unauthorized_client")) => ConnectorError::ProviderUnavailable(
            "Google refused the gateway's OAuth client; the operator must check AURORA_GCP_CLIENT_ID \
             and AURORA_GCP_CLIENT_SECRET"
                .into(),
        ),
        (StatusCode::TOO_MANY_REQUESTS, _) => {
            let secs = retry_after(headers);
            ConnectorError::RateLimited {
                message: format!("Google is limiting the request rate; try again in {secs} seconds"),
                retry_after_secs: secs,
            }
        }
        (s, _) if s.is_server_error() => ConnectorError::ProviderUnavailable(format!(
            "Google's token endpoint answered HTTP {}; try again shortly",
            s.as_u16()
        )),
        (s, Some(code)) => ConnectorError::InvalidRequest(format!(
            "Google refused the token request ({code}, HTTP {})",
            s.as_u16()
        )),
        (s, None) => ConnectorError::InvalidRequest(format!(
            "Google refused the token request (HTTP {})",
            s.as_u16()
        )),
    }
}
