//! Unit tests of the setup: progress, checkpoints and error classification.

use super::*;

#[test]
fn progress_is_monotonic_and_bounded() {
    assert_eq!(progress_at(0.0), 0);
    assert_eq!(progress_at(7.0), 100);
    assert_eq!(progress_at(9.0), 100);
    let mut last = -1;
    for step in 1..=TOTAL_STEPS {
        for i in 0..=4 {
            let p = progress_within(step, i, 4);
            assert!(p >= last, "step {step} item {i}: {p} < {last}");
            last = p;
        }
    }
    assert_eq!(progress_within(3, 0, 0), progress_at(3.0));
}

#[test]
fn checkpoint_round_trip_and_eligibility() {
    let mut cp = Checkpoint::new(ConnectionId::new(), "a@example.com", Some("123"));
    cp.projects = vec![
        Project {
            project_id: "p1".into(),
            name: "One".into(),
            number: Some("1".into()),
        },
        Project {
            project_id: "p2".into(),
            name: "Two".into(),
            number: None,
        },
        Project {
            project_id: "p3".into(),
            name: "Three".into(),
            number: None,
        },
    ];
    cp.billing.insert("p1".into(), Some(true));
    cp.billing.insert("p2".into(), Some(false));
    cp.billing.insert("p3".into(), None);
    let ids: Vec<_> = cp.eligible().iter().map(|p| p.project_id.clone()).collect();
    assert_eq!(ids, ["p1"]);
    let back: Checkpoint = serde_json::from_value(cp.to_json()).unwrap();
    assert_eq!(back, cp);
    assert_eq!(
        project_list(&cp.eligible()),
        serde_json::json!([{"projectId": "p1", "name": "One"}])
    );
    // An older document without the later fields still decodes.
    let minimal: Checkpoint = serde_json::from_value(serde_json::json!({
        "connectionId": ConnectionId::new(), "accountId": "x"
    }))
    .unwrap();
    assert_eq!(minimal.completed_step, 0);
}

#[test]
fn errors_classify() {
    assert!(matches!(
        StepError::from(ConnectorError::CredentialsRejected("x".into())),
        StepError::Permanent { refusal: true, .. }
    ));
    assert!(matches!(
        StepError::from(ConnectorError::RateLimited {
            message: "m".into(),
            retry_after_secs: 9
        }),
        StepError::Transient {
            retry_after: Some(9),
            ..
        }
    ));
    assert!(matches!(
        StepError::from(StoreError::Unavailable("x".into())),
        StepError::Transient { .. }
    ));
    assert!(matches!(
        google(GoogleError::Denied(None), "x"),
        StepError::Permanent { refusal: false, .. }
    ));
    assert!(AccessOutcome {
        missing: vec!["compute.instances.list".into()]
    }
    .ok());
    assert!(!AccessOutcome {
        missing: vec![ESSENTIAL_PERMISSION.into()]
    }
    .ok());
}
