//! Unit tests of the GCP settings: defaults, bounds, endpoints and the state cookie.

use super::*;

#[test]
fn defaults() {
    let c = GcpConfig::from_settings(&Settings::new()).unwrap();
    assert!(c.client.is_none());
    assert_eq!(c.auth_url.as_str(), DEFAULT_AUTH_URL);
    assert_eq!(c.token_url.as_str(), DEFAULT_TOKEN_URL);
    assert_eq!(c.redirect_uri, "http://127.0.0.1:8080/gcp/callback");
    assert_eq!(c.frontend_url, "http://127.0.0.1:8080");
    assert_eq!(c.max_auto_projects, 5);
    assert_eq!(c.required_apis.len(), DEFAULT_REQUIRED_APIS.len());
    assert_eq!(c.worker.lease, Duration::from_secs(60));
    assert_eq!(c.worker.poll, Duration::from_millis(500));
    assert_eq!(c.reconcile_grace, Duration::from_secs(600));
    // http on loopback: no Secure (a local browser would not keep it otherwise).
    assert_eq!(
        c.state_cookie,
        StateCookie {
            required: true,
            secure: false,
            path: "/gcp/callback".into(),
            domain: None
        }
    );
}

#[test]
fn state_cookie_settings() {
    let cookie = |pairs: &[(&str, &str)]| {
        let mut s = Settings::new();
        for (k, v) in pairs {
            s.set(*k, *v);
        }
        GcpConfig::from_settings(&s).map(|c| c.state_cookie)
    };
    let c = cookie(&[("AURORA_PUBLIC_URL", "https://api.aurora.example/base")]).unwrap();
    assert!(c.required && c.secure);
    assert_eq!(c.path, "/base/gcp/callback");
    assert_eq!(
        c.set_cookie("n", "v", Duration::from_secs(600)),
        "n=v; Max-Age=600; Path=/base/gcp/callback; HttpOnly; SameSite=Lax; Secure"
    );
    assert_eq!(
        c.clear_cookie("n"),
        "n=; Max-Age=0; Path=/base/gcp/callback; HttpOnly; SameSite=Lax; Secure"
    );
    // Plain http elsewhere than loopback still gets Secure (browsers then drop it: use https).
    for public in ["http://aurora.internal:8080", "http://10.0.0.5"] {
        assert!(cookie(&[("AURORA_PUBLIC_URL", public)]).unwrap().secure);
    }
    for public in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
    ] {
        assert!(!cookie(&[("AURORA_PUBLIC_URL", public)]).unwrap().secure);
    }
    let c = cookie(&[
        ("AURORA_PUBLIC_URL", "https://api.aurora.example"),
        (STATE_COOKIE, " OFF "),
        (STATE_COOKIE_DOMAIN, ".Aurora.Example"),
    ])
    .unwrap();
    assert!(!c.required);
    assert_eq!(c.domain.as_deref(), Some("aurora.example"));
    assert!(c
        .set_cookie("n", "v", Duration::from_secs(1))
        .contains("; Domain=aurora.example;"));
    for (k, v) in [
        (STATE_COOKIE, "maybe"),
        (STATE_COOKIE_DOMAIN, "other.example"),
        (STATE_COOKIE_DOMAIN, "bad domain"),
        (RECONCILE_GRACE_SECS, "0"),
    ] {
        let e = cookie(&[("AURORA_PUBLIC_URL", "https://api.aurora.example"), (k, v)]).unwrap_err();
        assert!(e.contains(k), "{e}");
    }
}

#[test]
fn overrides_and_checks() {
    let s = Settings::new()
        .with(CLIENT_ID, " cid ")
        .with(CLIENT_SECRET, "csecret")
        .with("AURORA_PUBLIC_URL", "https://aurora.example/")
        .with("AURORA_FRONTEND_URL", "https://app.example/")
        .with(MAX_AUTO_PROJECTS, "2")
        .with(
            REQUIRED_APIS,
            "compute.googleapis.com, logging.googleapis.com",
        );
    let c = GcpConfig::from_settings(&s).unwrap();
    let client = c.client.as_ref().unwrap();
    assert_eq!(client.client_id, "cid");
    assert!(!format!("{client:?}").contains("csecret"));
    assert_eq!(c.redirect_uri, "https://aurora.example/gcp/callback");
    assert_eq!(
        c.frontend_redirect("gcp_failed", None),
        "https://app.example/chat?login=gcp_failed"
    );
    assert_eq!(c.max_auto_projects, 2);
    assert_eq!(
        c.required_apis,
        ["compute.googleapis.com", "logging.googleapis.com"]
    );
    // Only the id: not configured.
    let c = GcpConfig::from_settings(&Settings::new().with(CLIENT_ID, "x")).unwrap();
    assert!(c.client.is_none());
    for (k, v) in [
        (TOKEN_URL, "ftp://x"),
        (AUTH_URL, "not a url"),
        (API_URL, "http://h/?q=1"),
        (MAX_AUTO_PROJECTS, "0"),
        (SETUP_LEASE_SECS, "x"),
        (REQUIRED_APIS, "Compute API"),
    ] {
        let e = GcpConfig::from_settings(&Settings::new().with(k, v)).unwrap_err();
        assert!(e.contains(k), "{e}");
    }
}

#[test]
fn api_urls() {
    let c = GcpConfig::from_settings(&Settings::new()).unwrap();
    assert_eq!(
        c.api_url("cloudresourcemanager", &["v3", "projects:search"])
            .as_str(),
        "https://cloudresourcemanager.googleapis.com/v3/projects:search"
    );
    let c = GcpConfig::from_settings(&Settings::new().with(API_URL, "http://127.0.0.1:9/google/"))
        .unwrap();
    assert_eq!(
        c.api_url(
            "cloudbilling",
            &["v1", "projects", "my-proj", "billingInfo"]
        )
        .as_str(),
        "http://127.0.0.1:9/google/cloudbilling/v1/projects/my-proj/billingInfo"
    );
    assert_eq!(
        c.api_url("serviceusage", &["v1", "projects", "a/b?c"])
            .as_str(),
        "http://127.0.0.1:9/google/serviceusage/v1/projects/a%2Fb%3Fc"
    );
}
