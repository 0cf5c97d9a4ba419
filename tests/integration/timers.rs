//! Durable timers: races against events, eternal loops, and restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestHost, health_server};

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_that_arrives_before_the_deadline_wins() {
    let host = TestHost::start().await;
    let id = host
        .start_instance("Approval", None, r#"{"timeoutSeconds": 60}"#)
        .await;
    assert_eq!(
        host.wait_for_status(&id, "Running").await["customStatus"],
        "waiting for approval"
    );
    host.raise(&id, "approval", "true").await;
    assert_eq!(
        host.wait_for_status(&id, "Completed").await["output"],
        "approved"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_answer_the_durable_timer_decides() {
    let host = TestHost::start().await;
    let started = Instant::now();
    let id = host
        .start_instance("Approval", None, r#"{"timeoutSeconds": 1}"#)
        .await;
    assert_eq!(
        host.wait_for_status(&id, "Completed").await["output"],
        "timed out"
    );
    assert!(started.elapsed() >= Duration::from_secs(1), "fired early");

    let types = host.event_types(&id).await;
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "TimerCreated",
            "TimerFired",
            "ExecutionCompleted"
        ]
    );
    // A late answer finds the instance finished.
    assert_eq!(
        host.raise(&id, "approval", "true").await.status,
        StatusCode::GONE
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_that_came_due_while_the_host_was_down_fires_after_restart() {
    let mut host = TestHost::start().await;
    // Long enough for the kill to land first, even on a slow machine.
    let id = host
        .start_instance("Approval", None, r#"{"timeoutSeconds": 3}"#)
        .await;
    host.wait_for_status(&id, "Running").await;
    host.kill();
    let pending = host.pending_timers(&id);
    assert_eq!(pending.len(), 1, "the timer fired before the kill");
    // Down until the timer is overdue.
    while now_millis() <= pending[0] {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    host.restart().await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], "timed out");
    let types = host.event_types(&id).await;
    assert!(types.iter().any(|kind| kind == "TimerFired"), "{types:?}");
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eternal_monitor_polls_on_its_timer_and_stops_when_told() {
    let status = Arc::new(AtomicU16::new(503));
    let port = health_server(Arc::clone(&status)).await;
    let allow = format!("127.0.0.1:{port}");
    let host = TestHost::with_samples()
        .with_args(&["--allow-http-host", &allow])
        .started()
        .await;
    let input = json!({ "url": format!("http://{allow}/health"), "intervalMs": 50 });
    let id = host
        .start_instance("Monitor", None, &input.to_string())
        .await;
    let checks = |body: &Value| body["customStatus"]["checks"].as_u64().unwrap_or(0);
    let seen = host
        .wait_for(&id, Duration::from_secs(60), |body| checks(body) >= 2)
        .await;
    assert_eq!(seen["customStatus"]["lastStatus"], 503, "{seen}");

    // The endpoint recovers; a later poll sees it.
    status.store(200, Ordering::SeqCst);
    let seen = host
        .wait_for(&id, Duration::from_secs(60), |body| {
            body["customStatus"]["lastStatus"] == 200
        })
        .await;
    assert_eq!(seen["customStatus"]["changes"], 1, "{seen}");

    host.raise(&id, "stop", "null").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert!(done["output"]["checks"].as_u64().unwrap() >= 3, "{done}");
    assert_eq!(done["output"]["lastStatus"], 200, "{done}");
    // Each generation's history is short: continue-as-new dropped the rest.
    let history = host
        .get(&format!("/instances/{id}?showHistory=true"))
        .await
        .body;
    assert!(
        history["historyEvents"].as_array().unwrap().len() <= 5,
        "{history}"
    );
}

/// Starts a phone verification and returns its ID and the challenge code
/// its activity "sent", read from the history.
async fn start_verification(host: &TestHost, timeout_seconds: u64) -> (String, u64) {
    let input = format!(r#"{{"phone": "+15555550100", "timeoutSeconds": {timeout_seconds}}}"#);
    let id = host
        .start_instance("E4_SmsPhoneVerification", None, &input)
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let history = host
            .get(&format!(
                "/instances/{id}?showHistory=true&showHistoryOutput=true"
            ))
            .await
            .body;
        let sent = history["historyEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["EventType"] == "TaskCompleted")
            .map(|event| event["Result"].as_u64().expect("the code is a number"));
        if let Some(code) = sent {
            return (id, code);
        }
        assert!(
            Instant::now() < deadline,
            "no challenge was sent: {history}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn attempts_left(host: &TestHost, id: &str, left: u64) {
    host.wait_for(id, Duration::from_secs(30), |body| {
        body["customStatus"] == json!({ "attemptsLeft": left })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn phone_verification_accepts_the_code_after_a_wrong_answer() {
    let host = TestHost::start().await;
    let (id, code) = start_verification(&host, 60).await;
    attempts_left(&host, &id, 3).await;
    host.raise(
        &id,
        "SmsChallengeResponse",
        &((code + 1) % 10_000).to_string(),
    )
    .await;
    attempts_left(&host, &id, 2).await;
    // Digits as a string count too.
    host.raise(&id, "SmsChallengeResponse", &format!("\"{code:04}\""))
        .await;
    assert_eq!(host.wait_for_status(&id, "Completed").await["output"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn phone_verification_fails_after_three_wrong_answers_or_the_deadline() {
    let host = TestHost::start().await;
    let (wrong, code) = start_verification(&host, 60).await;
    let (late, _) = start_verification(&host, 1).await;
    // Sent at once, before the orchestrator waits: none is lost, each uses
    // up an attempt, and the right answer after them comes too late.
    for answer in [
        json!(code + 1),
        json!("not a number"),
        Value::Null,
        json!(code),
    ] {
        host.raise(&wrong, "SmsChallengeResponse", &answer.to_string())
            .await;
    }
    let done = host.wait_for_status(&wrong, "Completed").await;
    assert_eq!(done["output"], false);
    assert_eq!(done["customStatus"], json!({ "attemptsLeft": 0 }));

    let done = host.wait_for_status(&late, "Completed").await;
    assert_eq!(done["output"], false, "the deadline passed unanswered");
}

/// An instance's time never goes backwards: after its last episode ran on
/// a host whose clock was an hour ahead, its next episode, on a host with
/// the right time, is no earlier (so a timer it sets is not due before one
/// it set earlier, and `current_time` is monotonic).
#[tokio::test(flavor = "multi_thread")]
async fn an_instances_time_never_goes_backwards_when_a_clock_is_behind() {
    let mut host = TestHost::start_with(&[&crate::harness::components().counter]).await;
    host.start_instance("E3_Counter", Some("c"), "0").await;
    host.wait_for_status("c", "Running").await;
    host.kill();
    host.alter_database(
        "UPDATE instances SET updated_at = updated_at + 3600000 WHERE instance_id = 'c'",
    );
    host.restart().await;
    let ahead = host.status("c").await.body["lastUpdatedTime"]
        .as_str()
        .unwrap()
        .to_owned();
    host.raise("c", "operation", "\"incr\"").await;
    let after = host
        .wait_for("c", Duration::from_secs(60), |body| body["input"] == 1)
        .await;
    let updated = after["lastUpdatedTime"].as_str().unwrap();
    assert!(updated >= ahead.as_str(), "{updated} is before {ahead}");
}
