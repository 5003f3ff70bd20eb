//! Unit tests of the settings: files, environment, prefixes, bounds and start-up messages.

use super::*;

#[test]
fn file_and_overlay() {
    let file = Settings::parse_file("# c\nAURORA_BIND=0.0.0.0:1\nAURORA_X = \"y\"\n").unwrap();
    assert_eq!(file.get("AURORA_X"), Some("y"));
    let merged = file.overlay(Settings::new().with("AURORA_BIND", "127.0.0.1:2"));
    assert_eq!(merged.get("AURORA_BIND"), Some("127.0.0.1:2"));
    assert!(Settings::parse_file("nokey").is_err());
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(default)]
struct Demo {
    flag: bool,
    name: String,
    secret: Option<String>,
    #[serde(deserialize_with = "Range::<1, 10>::int")]
    count: u32,
    #[serde(deserialize_with = "Range::<0, 300>::secs")]
    ttl: Duration,
    #[serde(deserialize_with = "AtLeast::<10>::millis")]
    poll_ms: Duration,
    #[serde(deserialize_with = "AtLeast::<0>::days")]
    keep_days: Duration,
}

impl Default for Demo {
    fn default() -> Self {
        Self {
            flag: true,
            name: "n".into(),
            secret: None,
            count: 3,
            ttl: Duration::from_secs(30),
            poll_ms: Duration::from_millis(500),
            keep_days: Duration::from_secs(86_400),
        }
    }
}

#[test]
fn extract_reads_prefixed_values_with_defaults() {
    let s = Settings::new();
    assert_eq!(s.extract::<Demo>("AURORA_D_").unwrap(), Demo::default());
    let s = Settings::new()
        .with("AURORA_D_FLAG", "OFF")
        .with("AURORA_D_NAME", "123")
        .with("AURORA_D_SECRET", "")
        .with("AURORA_D_COUNT", "10")
        .with("AURORA_D_TTL", "2m")
        .with("AURORA_D_POLL_MS", "15")
        .with("AURORA_D_KEEP_DAYS", "2")
        .with("AURORA_OTHER_COUNT", "x");
    let d = s.extract::<Demo>("AURORA_D_").unwrap();
    let want = Demo {
        flag: false,
        name: "123".into(),
        secret: None,
        count: 10,
        ttl: Duration::from_secs(120),
        poll_ms: Duration::from_millis(15),
        keep_days: Duration::from_secs(2 * 86_400),
    };
    assert_eq!(d, want);
}

#[test]
fn errors_name_the_variable_and_hide_the_value() {
    for (k, v, want) in [
        (
            "AURORA_D_COUNT",
            "0",
            "AURORA_D_COUNT must be between 1 and 10",
        ),
        (
            "AURORA_D_COUNT",
            "s3cr3t",
            "AURORA_D_COUNT has a malformed value (expected u64)",
        ),
        (
            "AURORA_D_FLAG",
            "s3cr3t",
            "AURORA_D_FLAG must be true or false",
        ),
        (
            "AURORA_D_TTL",
            "301",
            "AURORA_D_TTL must be at most 300 seconds",
        ),
        (
            "AURORA_D_TTL",
            "5h",
            "AURORA_D_TTL must be at most 300 seconds",
        ),
        (
            "AURORA_D_POLL_MS",
            "9",
            "AURORA_D_POLL_MS must be at least 10 milliseconds",
        ),
        (
            "AURORA_D_KEEP_DAYS",
            "s3cr3t",
            "AURORA_D_KEEP_DAYS must be a number of days or a duration such as 90s",
        ),
    ] {
        let e = Settings::new().with(k, v).extract::<Demo>("AURORA_D_");
        assert_eq!(e.unwrap_err(), want);
    }
}

#[test]
fn lenient_extract_keeps_defaults_for_bad_values() {
    let s = Settings::new()
        .with("AURORA_D_COUNT", "0")
        .with("AURORA_D_TTL", "soon")
        .with("AURORA_D_NAME", "kept");
    let (d, errors) = s.extract_lenient::<Demo>("AURORA_D_");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        (d.count, d.ttl, d.name.as_str()),
        (3, Duration::from_secs(30), "kept")
    );
}

#[test]
fn debug_hides_values() {
    let s = Settings::new().with("AURORA_VAULT_TOKEN", "s.secret");
    assert!(!format!("{s:?}").contains("s.secret"));
    assert!(format!("{s:?}").contains("AURORA_VAULT_TOKEN"));
}
