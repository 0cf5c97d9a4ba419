//! Activities: called in order and in parallel, retried, timed out, and run
//! again (but recorded once) when the host dies mid-run.

use std::time::Duration;

use serde_json::json;

use crate::harness::{TestHost, components, event_types};

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|kind| *kind == wanted).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_sequence_calls_three_activities_in_order() {
    let host = TestHost::start().await;
    let id = host.start_instance("E1_HelloSequence", None, "").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(
        done["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );

    let history = host
        .get(&format!(
            "/instances/{id}?showHistory=true&showHistoryOutput=true"
        ))
        .await
        .body;
    // As Durable Functions shows it: a finished activity is one entry.
    let types = event_types(&history);
    assert_eq!(
        (
            count(&types, "TaskScheduled"),
            count(&types, "TaskCompleted")
        ),
        (0, 3),
        "{types:?}"
    );
    let completed = history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["EventType"] == "TaskCompleted")
        .unwrap();
    assert_eq!(completed["FunctionName"], "E1_SayHello");
    assert_eq!(completed["Input"], "Tokyo");
    assert!(completed["ScheduledTime"].is_string(), "{completed}");
    assert_eq!(completed["Result"], "Hello Tokyo!");
    assert!(completed["ScheduledTime"].is_string(), "{completed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_fan_in_aggregates_parallel_activities() {
    let host = TestHost::start().await;
    let id = host.start_instance("FanOutFanIn", None, "20").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], 2870, "the sum of the squares of 1..=20");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_activity_is_retried_with_backoff_then_fails_the_orchestration() {
    let host = TestHost::start_with(&[&components().misbehaving]).await;
    let call = r#"{"activity": "AlwaysFails", "input": 7, "attempts": 3, "intervalMs": 100}"#;
    let id = host.start_instance("CallActivity", None, call).await;
    let failed = host.wait_for_status(&id, "Failed").await;
    let error = failed["output"].as_str().unwrap();
    assert!(
        error.contains("refusing 7") && error.contains("attempt 3 of 3"),
        "{error}"
    );

    let types = host.event_types(&id).await;
    assert_eq!(count(&types, "TaskFailed"), 3, "{types:?}");
    assert_eq!(
        count(&types, "TimerFired"),
        2,
        "one backoff between attempts: {types:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn activities_that_run_too_long_time_out_and_unknown_ones_fail() {
    let components = components();
    let host = TestHost::prepare(&[&components.misbehaving])
        .with_args(&["--activity-timeout-secs", "1"])
        .started()
        .await;
    let spin = host
        .start_instance("CallActivity", None, r#"{"activity": "SpinsForever"}"#)
        .await;
    let sleep = host
        .start_instance(
            "CallActivity",
            None,
            r#"{"activity": "SlowEcho", "input": {"ms": 60000, "value": 1}}"#,
        )
        .await;
    let unknown = host
        .start_instance("CallActivity", None, r#"{"activity": "NoSuchActivity"}"#)
        .await;
    for id in [&spin, &sleep] {
        let failed = host.wait_for_status(id, "Failed").await;
        let error = failed["output"].as_str().unwrap();
        assert!(error.contains("ran past its timeout of 1s"), "{error}");
    }
    let failed = host.wait_for_status(&unknown, "Failed").await;
    assert!(
        failed["output"]
            .as_str()
            .unwrap()
            .contains("no loaded component exports an activity named 'NoSuchActivity'"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_cut_off_by_a_kill_runs_again_and_is_recorded_once() {
    let mut host = TestHost::start_with(&[&components().misbehaving]).await;
    // Slow enough for the kill to land mid-run, even on a slow machine.
    let call = r#"{"activity": "SlowEcho", "input": {"ms": 3000, "value": "survived"}}"#;
    let id = host.start_instance("CallActivity", None, call).await;
    host.wait_for_log("SlowEcho running").await;
    host.kill();
    // It was mid-sleep: still queued (leased), its result not recorded.
    assert_eq!(
        host.database_rows(&format!(
            "SELECT name FROM activities WHERE instance_id = '{id}'"
        )),
        ["SlowEcho"],
        "the kill landed after the activity finished; inbox: {:?}",
        host.inbox(&id)
    );

    host.restart().await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], "survived");
    assert_eq!(count(&host.event_types(&id).await, "TaskCompleted"), 1);
    assert!(
        host.log().matches("SlowEcho running").count() >= 2,
        "it ran again after the restart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_loser_of_when_any_completing_later_does_not_disturb_the_winner() {
    let host = TestHost::start_with(&[&components().misbehaving]).await;
    // Far apart, so the fast one wins even on a slow machine.
    let id = host
        .start_instance("Race", None, r#"{"fastMs": 50, "slowMs": 3000}"#)
        .await;
    let decided = host
        .wait_for(&id, Duration::from_secs(30), |body| {
            !body["customStatus"].is_null()
        })
        .await;
    assert_eq!(
        decided["customStatus"],
        json!({ "index": 0, "winner": "fast" })
    );

    // The loser finishes too, and its result is recorded in a later episode
    // that replays the race the same way.
    let status = host
        .wait_for_history(&id, "the slow activity to complete", |types| {
            count(types, "TaskCompleted") == 2
        })
        .await;
    assert_eq!(status["runtimeStatus"], "Running");

    host.raise(&id, "finish", "null").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], json!({ "index": 0, "winner": "fast" }));
}
