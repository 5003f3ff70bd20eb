//! A fresh PostgreSQL schema per test, on the database named by `AURORA_TEST_DATABASE_URL`.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, Context};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const TIMEOUT: Duration = Duration::from_secs(5);

/// A schema made for one test. `url` is the base URL with `options=-csearch_path=<schema>`, so every
/// connection opened with it works inside the schema.
#[derive(Debug, Clone)]
pub struct PgSchema {
    pub url: String,
    pub schema: String,
    base_url: String,
}

/// Create a fresh schema `t_<random>` on `AURORA_TEST_DATABASE_URL` (default
/// `postgres://postgres@127.0.0.1:5432/test`).
pub async fn postgres_schema_url() -> anyhow::Result<PgSchema> {
    let base_url = std::env::var("AURORA_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let schema = format!("t_{}", crate::random_hex(8));
    execute(&base_url, &format!("CREATE SCHEMA {schema}")).await?;
    let sep = if base_url.contains('?') { '&' } else { '?' };
    Ok(PgSchema {
        url: format!("{base_url}{sep}options=-csearch_path%3D{schema}"),
        schema,
        base_url,
    })
}

impl PgSchema {
    /// Drop the schema and everything in it. Best effort: errors are returned for the caller to
    /// ignore or report.
    pub async fn drop_schema(&self) -> anyhow::Result<()> {
        execute(
            &self.base_url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        )
        .await
    }
}

/// Run one statement on a new connection.
async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut cfg = tokio_postgres::Config::from_str(url)
        .context("AURORA_TEST_DATABASE_URL is not a valid PostgreSQL URL")?;
    cfg.connect_timeout(TIMEOUT);
    let unreachable = |e: &dyn std::fmt::Display| {
        anyhow!(
            "PostgreSQL is unreachable at {} ({e}): start it (`cargo xtask services` does; by hand: \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) \
             or set AURORA_TEST_DATABASE_URL",
            redact(url)
        )
    };
    let (client, conn) =
        match tokio::time::timeout(TIMEOUT, cfg.connect(tokio_postgres::NoTls)).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => return Err(unreachable(&"timed out")),
        };
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = tokio::time::timeout(TIMEOUT, client.batch_execute(sql)).await;
    drop(client);
    let _ = driver.await;
    match res {
        Ok(r) => r.with_context(|| format!("PostgreSQL refused `{sql}`")),
        Err(_) => Err(anyhow!("PostgreSQL did not answer `{sql}` in time")),
    }
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[tokio::test]
    async fn fresh_schema_is_the_search_path() {
        let s = postgres_schema_url().await.unwrap();
        assert!(s.url.contains(&format!("search_path%3D{}", s.schema)));
        let cfg = tokio_postgres::Config::from_str(&s.url).unwrap();
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE probe (id int)")
            .await
            .unwrap();
        let row = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'probe'",
                &[&s.schema],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 1);
        drop(client);
        s.drop_schema().await.unwrap();
    }
}
