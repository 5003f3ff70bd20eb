//! The login state cookie: which browsers it binds (`AURORA_GCP_STATE_COOKIE`) and how it is written.

use super::*;

/// The cookie that binds a login's `state` to the browser that asked for it (login CSRF, RFC 9700
/// §4.7): set on the login answer, required by the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCookie {
    /// `AURORA_GCP_STATE_COOKIE=required` (the default); `off` neither sets nor checks it.
    pub required: bool,
    /// `Secure`, unless the redirect URI is plain `http` on a loopback host (local development).
    pub secure: bool,
    /// `Path`: the redirect URI's path (the callback as the browser reaches it).
    pub path: String,
    /// `Domain` (`AURORA_GCP_STATE_COOKIE_DOMAIN`); without it the cookie is host-only.
    pub domain: Option<String>,
}

impl StateCookie {
    pub(super) fn from_settings(s: &Settings, redirect_uri: &str) -> Result<Self, String> {
        let required = match s.get(STATE_COOKIE).map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v == "required" => true,
            Some(v) if v == "off" => false,
            Some(_) => return Err(format!("{STATE_COOKIE} must be `required` or `off`")),
        };
        let url =
            Url::parse(redirect_uri).map_err(|e| format!("the redirect URI is invalid ({e})"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let path = url.path().to_owned();
        if !path.starts_with('/')
            || !path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        {
            return Err(format!(
                "the redirect URI's path cannot be a cookie path ({STATE_COOKIE}=off to go without the cookie)"
            ));
        }
        let domain = match s.get(STATE_COOKIE_DOMAIN).map(str::trim) {
            None | Some("") => None,
            Some(d) => {
                let d = d.trim_start_matches('.').to_ascii_lowercase();
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                let syntax = !d.is_empty()
                    && d.len() <= 253
                    && d.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                if !syntax {
                    return Err(format!("{STATE_COOKIE_DOMAIN} must be a domain name"));
                }
                if host != d && !host.ends_with(&format!(".{d}")) {
                    return Err(format!(
                        "{STATE_COOKIE_DOMAIN} must be the redirect URI's host ({host}) or a parent \
                         domain of it, else the browser never sends the cookie to the callback"
                    ));
                }
                Some(d)
            }
        };
        Ok(Self {
            required,
            secure: !(url.scheme() == "http" && loopback),
            path,
            domain,
        })
    }

    pub(super) fn attributes(&self, max_age_secs: u64) -> String {
        let mut out = format!("Max-Age={max_age_secs}; Path={}", self.path);
        if let Some(d) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(d);
        }
        out.push_str("; HttpOnly; SameSite=Lax");
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }

    /// The `Set-Cookie` value that hands `value` to the browser for `max_age`.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        format!("{name}={value}; {}", self.attributes(max_age.as_secs()))
    }

    /// The `Set-Cookie` value that removes the cookie `name`.
    pub fn clear_cookie(&self, name: &str) -> String {
        format!("{name}=; {}", self.attributes(0))
    }
}
