//! Durable timers: races against events, eternal loops, and restarts.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::TestHost;

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

    let history = host
        .get(&format!("/instances/{id}?showHistory=true"))
        .await
        .body;
    let types: Vec<&str> = history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["EventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "CustomStatusSet",
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
    let id = host
        .start_instance("Approval", None, r#"{"timeoutSeconds": 1}"#)
        .await;
    host.wait_for_status(&id, "Running").await;
    host.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    host.restart().await;
    let done = host
        .wait_for(&id, Duration::from_secs(5), |body| {
            body["runtimeStatus"] == "Completed"
        })
        .await;
    assert_eq!(done["output"], "timed out");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eternal_monitor_ticks_on_its_timer_and_stops_when_told() {
    let host = TestHost::start().await;
    let id = host
        .start_instance("Monitor", None, r#"{"intervalMs": 50}"#)
        .await;
    host.wait_for(&id, Duration::from_secs(10), |body| {
        body["customStatus"]["ticks"]
            .as_u64()
            .is_some_and(|ticks| ticks >= 3)
    })
    .await;
    host.raise(&id, "stop", "null").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert!(done["output"].as_u64().unwrap() >= 3, "{done}");
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
