//! What `reprise:orchestration@0.2.0` added, end to end through the
//! `contract-features` test guest: timer cancellation, failure details
//! (kinds, retryability, timeouts), the activity context, orchestrations
//! started on their own, and logging that is silent while replaying.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestHost, components};

async fn host(args: &[&str]) -> TestHost {
    TestHost::prepare(&[&components().contract_features])
        .with_args(args)
        .started()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_dropped_before_it_fires_is_removed() {
    let host = host(&[]).await;
    let id = host.start_instance("CancelsItsTimer", None, "null").await;
    let timers = async |count: usize| {
        let pending = host.pending_timers(&id);
        match pending.len() == count {
            true => Ok(()),
            false => Err(format!("{pending:?}")),
        }
    };
    let wait = Duration::from_secs(30);
    host.wait_until("the timeout's timer", wait, async || timers(1).await)
        .await;
    host.raise(&id, "go", "\"early\"").await;
    host.wait_until("the timer to go", wait, async || timers(0).await)
        .await;
    let history = host.history(&id).await;
    let cancelled: Vec<&Value> = history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["EventType"] == "TimerCancelled")
        .collect();
    assert_eq!(cancelled.len(), 1, "{history}");
    assert_eq!(history["runtimeStatus"], "Running");

    host.raise(&id, "finish", "null").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], "early");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_carry_their_kind_and_retryability_and_activities_their_context() {
    let host = host(&["--activity-timeout-secs", "1"]).await;
    let id = host.start_instance("Failures", None, "null").await;
    let done = host.wait_for_status(&id, "Completed").await;
    let output = &done["output"];

    // Not retryable: tried once, though the policy allows three.
    assert_eq!(output["rejected"]["kind"], "validation");
    assert_eq!(output["rejected"]["retryable"], false);
    let message = output["rejected"]["message"].as_str().unwrap();
    assert!(
        message.contains("no such customer") && message.contains("attempt 1 of 3"),
        "{message}"
    );
    assert_eq!(
        output["slow"],
        json!({ "kind": "timeout", "timeout": true })
    );

    let lucky = &output["lucky"];
    assert_eq!(
        (&lucky["instanceId"], &lucky["attempt"]),
        (&json!(id), &json!(3))
    );
    let task = lucky["taskId"].as_u64().unwrap();
    assert_eq!(lucky["idempotencyKey"], format!("{id}/0/{task}"));

    // The history shows the failures' details as Durable Functions does.
    let history = host.history(&id).await;
    let details: Vec<&Value> = history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event.get("FailureDetails"))
        .collect();
    assert!(
        details.contains(&&json!({
            "ErrorType": "validation",
            "ErrorMessage": "no such customer",
            "IsNonRetriable": true,
        })),
        "{details:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orchestrator_fails_with_a_kind_of_its_own() {
    let host = host(&[]).await;
    let id = host.start_instance("FailsWithKind", None, "null").await;
    let failed = host.wait_for_status(&id, "Failed").await;
    assert_eq!(failed["output"], "the input is not an order");
    let history = host.history(&id).await;
    let last = history["historyEvents"].as_array().unwrap().last().cloned();
    assert_eq!(
        last.unwrap()["FailureDetails"],
        json!({
            "ErrorType": "validation",
            "ErrorMessage": "the input is not an order",
            "IsNonRetriable": true,
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orchestration_started_on_its_own_runs_and_is_no_child() {
    let host = host(&[]).await;
    let id = host
        .start_instance("Starter", Some("starter"), "null")
        .await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], "starter-started");
    let started = host.wait_for_status("starter-started", "Completed").await;
    assert_eq!(started["output"], "hi");
    // Not a child: the starter's history shows the start, and no result.
    let types = host.event_types(&id).await;
    assert!(
        types.contains(&"OrchestrationInstanceStarted".to_owned()),
        "{types:?}"
    );
    assert!(
        !types
            .iter()
            .any(|kind| kind.starts_with("SubOrchestration")),
        "{types:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_an_orchestrator_logs_is_logged_once_though_it_replays() {
    // No warm executions: every episode replays the ones before.
    let host = host(&["--warm-executions", "0"]).await;
    let id = host.start_instance("Logs", None, "null").await;
    host.wait_for_status(&id, "Running").await;
    host.raise(&id, "a", "null").await;
    host.raise(&id, "b", "null").await;
    host.wait_for_status(&id, "Completed").await;
    let line = format!("logged once by {id}");
    host.wait_for_log(&line).await;
    assert_eq!(host.log().matches(&line).count(), 1, "{}", host.log());
}
