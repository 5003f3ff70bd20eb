//! Database configuration: which backend to use and where it lives.

use std::fmt;
use std::path::{Path, PathBuf};

use connector_core::error::StoreError;

/// The default pool size of a PostgreSQL store.
pub const DEFAULT_PG_POOL_SIZE: usize = 16;

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DbConfig {
    /// A PostgreSQL server, reached with a `postgres://` URL (tokio-postgres syntax, which
    /// understands `?options=-csearch_path%3D…`).
    Postgres { url: String, pool_size: usize },
    /// An embedded SQLite database file (created with its parent directory if absent).
    Sqlite { path: PathBuf },
}

impl DbConfig {
    /// `postgres://…` or `postgresql://…` selects PostgreSQL (pool of 16); no URL selects SQLite at
    /// `data_dir/aurora.db`. Any other URL is refused; the error never repeats the URL, which may
    /// hold a password.
    pub fn from_url(url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        match url {
            None => Ok(Self::Sqlite {
                path: data_dir.join("aurora.db"),
            }),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Self::Postgres {
                    url: u.to_owned(),
                    pool_size: DEFAULT_PG_POOL_SIZE,
                })
            }
            Some(_) => Err(StoreError::Other(
                "unsupported database URL: the accepted schemes are postgres:// and postgresql:// \
                 (leave the URL unset for the embedded SQLite database)"
                    .into(),
            )),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Sqlite { .. } => "sqlite",
        }
    }
}

/// Never prints the PostgreSQL URL (it may hold a password).
impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres { pool_size, .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .field("pool_size", pool_size)
                .finish(),
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url_selects_backend() {
        let dir = Path::new("/var/lib/aurora");
        assert_eq!(
            DbConfig::from_url(None, dir).unwrap(),
            DbConfig::Sqlite {
                path: dir.join("aurora.db")
            }
        );
        for u in ["postgres://u:p@db:5432/aurora", "postgresql://db/aurora"] {
            match DbConfig::from_url(Some(u), dir).unwrap() {
                DbConfig::Postgres { url, pool_size } => {
                    assert_eq!(url, u);
                    assert_eq!(pool_size, 16);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn from_url_refuses_other_schemes_without_echo() {
        let err = DbConfig::from_url(Some("mysql://root:hunter2@db/x"), Path::new("/d"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://"), "{err}");
        assert!(err.contains("postgresql://"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!err.contains("mysql"), "{err}");
        assert!(DbConfig::from_url(Some(""), Path::new("/d")).is_err());
    }

    #[test]
    fn debug_redacts_url() {
        let cfg = DbConfig::Postgres {
            url: "postgres://u:hunter2@db/x".into(),
            pool_size: 1,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
