//! Unit tests of secret paths and the default `put_cas`/`get_or_create` of the `SecretStore` trait.

use super::*;

#[test]
fn paths() {
    let u = UserId::parse("alice@x.io").unwrap();
    let p = ProviderId::from_static("scaleway");
    let id = ConnectionId::new();
    let path = SecretPath::connection(&u, &p, id);
    assert_eq!(path.as_str(), format!("users/alice@x.io/scaleway/{id}"));
    assert_eq!(
        SecretPath::user_provider_folder(&u, &p)
            .child(&id.to_string())
            .unwrap(),
        path
    );
    let dots = UserId::parse("..").unwrap();
    assert_eq!(
        SecretPath::connection(&dots, &p, id).as_str(),
        format!("users/~../scaleway/{id}")
    );
    assert!(SecretPath::from_stored("users/../x").is_err());
    assert!(SecretPath::from_stored("users//x").is_err());
    assert!(SecretPath::from_stored("").is_err());
}

/// A store without versions: `put_cas` is the trait's default (a plain put answering 0).
/// `race` makes the first put land another writer's value first, as a replica starting at
/// the same moment would.
#[derive(Default)]
struct Plain {
    map: parking_lot::Mutex<std::collections::HashMap<SecretPath, SecretValue>>,
    race: parking_lot::Mutex<Option<SecretValue>>,
}

#[async_trait]
impl SecretStore for Plain {
    fn backend_name(&self) -> &'static str {
        "plain"
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        let mut map = self.map.lock();
        map.insert(path.clone(), value.clone());
        if let Some(theirs) = self.race.lock().take() {
            map.insert(path.clone(), theirs);
        }
        Ok(())
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        Ok(self.map.lock().get(path).cloned())
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        self.map.lock().remove(path);
        Ok(())
    }
    async fn list(&self, _: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        Ok(Vec::new())
    }
}

/// A store with a real check-and-set whose create loses to another writer once.
struct Versioned {
    inner: Plain,
    /// Stored just before the first create-only write, which then conflicts.
    first_writer: parking_lot::Mutex<Option<SecretValue>>,
}

#[async_trait]
impl SecretStore for Versioned {
    fn backend_name(&self) -> &'static str {
        "versioned"
    }
    async fn ping(&self) -> Result<(), SecretStoreError> {
        Ok(())
    }
    async fn put(&self, path: &SecretPath, value: &SecretValue) -> Result<(), SecretStoreError> {
        self.inner.put(path, value).await
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, SecretStoreError> {
        self.inner.get(path).await
    }
    async fn delete(&self, path: &SecretPath) -> Result<(), SecretStoreError> {
        self.inner.delete(path).await
    }
    async fn list(&self, _: &SecretPath) -> Result<Vec<String>, SecretStoreError> {
        Ok(Vec::new())
    }
    async fn put_cas(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        expected: u64,
    ) -> Result<u64, SecretStoreError> {
        let first = self.first_writer.lock().take();
        if let Some(theirs) = first {
            self.inner.put(path, &theirs).await?;
        }
        let exists = self.inner.get(path).await?.is_some();
        if expected != 0 || exists {
            return Err(SecretStoreError::Conflict("taken".into()));
        }
        self.inner.put(path, value).await.map(|()| 1)
    }
}

fn v(s: &str) -> SecretValue {
    SecretValue::from_bytes(s.as_bytes().to_vec())
}

#[tokio::test]
async fn get_or_create_default_without_versions() {
    let p = SecretPath::system("k");
    let s = Plain::default();
    assert_eq!(s.get_or_create(&p, &v("mine")).await.unwrap(), v("mine"));
    // Stored: a later caller gets it, not its own candidate.
    assert_eq!(s.get_or_create(&p, &v("other")).await.unwrap(), v("mine"));
    // Another writer's put landing last: the stored value is returned, not the candidate.
    let q = SecretPath::system("q");
    *s.race.lock() = Some(v("theirs"));
    assert_eq!(s.get_or_create(&q, &v("mine")).await.unwrap(), v("theirs"));
}

#[tokio::test]
async fn get_or_create_default_reads_the_winner_on_conflict() {
    let p = SecretPath::system("k");
    let s = Versioned {
        inner: Plain::default(),
        first_writer: parking_lot::Mutex::new(Some(v("winner"))),
    };
    assert_eq!(s.get_or_create(&p, &v("loser")).await.unwrap(), v("winner"));
    assert_eq!(s.get(&p).await.unwrap(), Some(v("winner")));
    let q = SecretPath::system("q");
    assert_eq!(s.get_or_create(&q, &v("first")).await.unwrap(), v("first"));
    assert_eq!(s.get_or_create(&q, &v("second")).await.unwrap(), v("first"));
}
