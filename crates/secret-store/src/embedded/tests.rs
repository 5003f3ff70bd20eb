//! Unit tests of the embedded secret store: record layout, key file checks, renamed and old-format files.

use super::*;

#[test]
fn record_round_trip() {
    let mut r = 3u32.to_be_bytes().to_vec();
    r.extend_from_slice(b"a/b\x00\xff");
    assert_eq!(split_record(&r), Some(("a/b", &b"\x00\xff"[..])));
    assert_eq!(split_record(&[0, 0, 0, 9, b'x']), None);
    assert_eq!(split_record(&[0, 0]), None);
}

#[test]
fn file_names_are_hashes() {
    let p = SecretPath::from_stored("users/a/b/c").unwrap();
    let n = file_name(&p);
    assert!(is_secret_file_name(&n));
    assert!(!n.contains("users"));
}

#[test]
fn refuses_a_readable_key_and_a_bad_length() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedSecretStore::open(dir.path()).unwrap());
    let key = dir.path().join(KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, SecretStoreError::Refused(_)), "{e}");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&key, [7u8; 31]).unwrap();
    let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("32 bytes"), "{e}");
}

#[tokio::test]
async fn refuses_to_make_a_new_key_over_existing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedSecretStore::open(dir.path()).unwrap();
    let p = SecretPath::from_stored("system/k").unwrap();
    s.put(&p, &SecretValue::from_bytes(b"v".to_vec()))
        .await
        .unwrap();
    fs::remove_file(s.key_file()).unwrap();
    let e = EmbeddedSecretStore::open(dir.path()).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

#[tokio::test]
async fn a_file_moved_to_another_name_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedSecretStore::open(dir.path()).unwrap();
    let a = SecretPath::from_stored("users/a/p/1").unwrap();
    let b = SecretPath::from_stored("users/b/p/1").unwrap();
    s.put(&a, &SecretValue::from_bytes(b"alice".to_vec()))
        .await
        .unwrap();
    let secrets = dir.path().join(SECRETS_DIR);
    fs::copy(secrets.join(file_name(&a)), secrets.join(file_name(&b))).unwrap();
    let e = s.get(&b).await.unwrap_err();
    assert!(matches!(e, SecretStoreError::Corrupt(_)), "{e}");
}

/// A file of the first format (no version) reads as version 1 and is upgraded by a write.
#[tokio::test]
async fn first_format_files_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedSecretStore::open(dir.path()).unwrap();
    let p = SecretPath::from_stored("users/a/p/legacy").unwrap();
    let name = file_name(&p);
    let mut record = (p.as_str().len() as u32).to_be_bytes().to_vec();
    record.extend_from_slice(p.as_str().as_bytes());
    record.extend_from_slice(b"old value");
    let sealed = s
        .inner
        .key
        .seal(&record, &aad_with(AAD_PREFIX_V1, &name))
        .unwrap();
    fs::write(dir.path().join(SECRETS_DIR).join(&name), sealed).unwrap();
    let v = s.get_versioned(&p).await.unwrap().unwrap();
    assert_eq!(v.value.expose_bytes(), b"old value");
    assert_eq!(v.version, 1);
    assert_eq!(
        s.list(&SecretPath::from_stored("users/a/p").unwrap())
            .await
            .unwrap(),
        ["legacy"]
    );
    assert_eq!(
        s.put_cas(&p, &SecretValue::from_bytes(b"new".to_vec()), 1)
            .await
            .unwrap(),
        2
    );
    let v = s.get_versioned(&p).await.unwrap().unwrap();
    assert_eq!((v.value.expose_bytes(), v.version), (&b"new"[..], 2));
}

#[test]
fn debug_shows_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedSecretStore::open(dir.path()).unwrap();
    assert_eq!(
        format!("{s:?}"),
        format!("EmbeddedSecretStore {{ dir: {:?}, .. }}", dir.path())
    );
}
