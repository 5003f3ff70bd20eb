//! What a benchmark run needs before it measures: the backends' environment and connections made through the gateway.

use super::*;

pub(super) struct Env {
    pub(super) vars: Vec<(String, String)>,
    pub(super) vault: Option<(String, String)>,
    pub(super) _bao: Option<aurora_testkit::OpenBao>,
    pub(super) dir: tempfile::TempDir,
}

impl Env {
    /// The gateway's `AURORA_DATA_DIR` (the embedded database lives there).
    pub(super) fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

pub(super) async fn backend_env(backend: &str, stub_url: &str) -> anyhow::Result<Env> {
    let dir = tempfile::tempdir()?;
    let mut vars: Vec<(String, String)> = vec![
        ("AURORA_DATA_DIR".into(), dir.path().display().to_string()),
        ("AURORA_INTERNAL_SECRET".into(), SECRET.into()),
        ("AWS_ENDPOINT_URL_STS".into(), format!("{stub_url}/sts")),
        ("AWS_ACCESS_KEY_ID".into(), "AKIABENCHGATEWAY0000".into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            "bench-gateway-secret".into(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AURORA_AWS_EXTERNAL_ID_CHECK".into(), "false".into()),
        ("AURORA_SCALEWAY_API_URL".into(), format!("{stub_url}/scw")),
        ("AURORA_RATE_LIMIT_CONNECT_PER_MIN".into(), "0".into()),
        ("AURORA_RATE_LIMIT_CREDENTIALS_PER_MIN".into(), "0".into()),
    ];
    let mut vault = None;
    let mut bao = None;
    if backend == "servers" {
        let pg = aurora_testkit::postgres_schema_url().await?;
        let b = aurora_testkit::OpenBao::start()?;
        vars.push(("AURORA_DATABASE_URL".into(), pg.url.clone()));
        vars.push(("AURORA_REDIS_URL".into(), aurora_testkit::redis_url()));
        vars.push((
            "AURORA_REDIS_PREFIX".into(),
            aurora_testkit::unique_prefix("bench"),
        ));
        vars.push(("AURORA_VAULT_ADDR".into(), b.addr.clone()));
        vars.push(("AURORA_VAULT_TOKEN".into(), b.token.clone()));
        vault = Some((b.addr.clone(), b.token.clone()));
        bao = Some(b);
    }
    Ok(Env {
        vars,
        vault,
        _bao: bao,
        dir,
    })
}

pub(super) async fn json_call(
    http: &reqwest::Client,
    req: reqwest::RequestBuilder,
) -> anyhow::Result<Value> {
    let _ = http;
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// Connect the benchmark's AWS account; returns the connection id.
pub(super) async fn connect_aws(
    http: &reqwest::Client,
    base: &str,
    user: &str,
) -> anyhow::Result<String> {
    let setup = json_call(
        http,
        http.get(format!("{base}/aws/setup"))
            .header("X-User-ID", user)
            .header("X-Internal-Secret", SECRET),
    )
    .await?;
    let ext = setup["externalId"].as_str().context("externalId")?;
    let auth = json_call(
        http,
        http.post(format!("{base}/aws/auth"))
            .header("X-User-ID", user)
            .header("X-Internal-Secret", SECRET)
            .json(&json!({"roleArn": format!("arn:aws:iam::{}:role/bench", stub::ACCOUNT), "externalId": ext})),
    )
    .await?;
    Ok(auth["connectionId"]
        .as_str()
        .context("connectionId")?
        .to_owned())
}

/// Connect `n` Scaleway organizations for one user; returns their connection ids.
pub(super) async fn connect_scaleway(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"accessKey": format!("SCW{:017}", i + 1), "secretKey": uuid::Uuid::new_v4().to_string()});
            let v = json_call(
                http,
                http.post(format!("{base}/scaleway_api/scaleway/connect"))
                    .header("X-User-ID", user)
                    .header("X-Internal-Secret", SECRET)
                    .json(&body),
            )
            .await?;
            Ok(v["connectionId"].as_str().context("connectionId")?.to_owned())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ids.into_iter().collect()
}

pub(super) fn creds_target(gw: &Gateway, user: &str, id: &str) -> Target {
    Target::new(
        gw.addr,
        format!("/api/connections/{id}/credentials?mode=full"),
    )
    .header("X-User-ID", user)
    .header("X-Internal-Secret", SECRET)
}
