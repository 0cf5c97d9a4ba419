//! Instance management of seed 003: status, history, terminate, purge.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestHost;

#[tokio::test(flavor = "multi_thread")]
async fn terminate_stops_a_running_instance_and_records_the_reason() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "3").await;
    host.wait_for_status(&id, "Running").await;

    let reply = host
        .post(
            &format!("/instances/{id}/terminate?reason=It%20was%20time%20to%20be%20done."),
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let done = host.wait_for_status(&id, "Terminated").await;
    assert_eq!(done["output"], "It was time to be done.");
    assert_eq!(done["input"], 3);

    // Finished instances take no more events or terminations: 410 Gone.
    let again = host.post(&format!("/instances/{id}/terminate"), "").await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.message().contains("Terminated"), "{again:?}");
    let event = host.raise(&id, "operation", "\"incr\"").await;
    assert_eq!(event.status, StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_after_a_queued_termination_are_refused_not_dropped() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "").await;
    // Terminate and raise back to back: either the event is refused (410) or
    // it was accepted before the termination and shows in the history.
    let terminate = host
        .post(&format!("/instances/{id}/terminate?reason=stop"), "")
        .await;
    assert_eq!(terminate.status, StatusCode::ACCEPTED);
    let event = host.raise(&id, "operation", "\"incr\"").await;
    assert_eq!(event.status, StatusCode::GONE, "{event:?}");
    host.wait_for_status(&id, "Terminated").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn show_history_lists_what_happened_in_the_current_generation() {
    let host = TestHost::start().await;
    let id = host.start_instance("SingletonJob", None, "").await;
    // Two episodes: the first sets the custom status, the second gets "stop".
    host.wait_for_status(&id, "Running").await;
    host.raise(&id, "command", "\"stop\"").await;
    host.wait_for_status(&id, "Completed").await;

    let reply = host
        .get(&format!("/instances/{id}?showHistory=true&showInput=false"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body.get("input"),
        Some(&Value::Null),
        "showInput=false hides the input, the key stays (the JS client needs it)"
    );
    let events = reply.body["historyEvents"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|event| event["EventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["ExecutionStarted", "EventRaised", "ExecutionCompleted"],
        "{events:?}"
    );
    assert_eq!(events[0]["FunctionName"], "SingletonJob");
    assert!(
        events[0].get("Input").is_none(),
        "showInput=false: {events:?}"
    );
    assert_eq!(events[1]["Name"], "command");
    assert!(
        events[2].get("Result").is_none(),
        "outputs only with showHistoryOutput=true: {events:?}"
    );
    let reply = host
        .get(&format!(
            "/instances/{id}?showHistory=true&showHistoryOutput=true"
        ))
        .await;
    let events = reply.body["historyEvents"].as_array().unwrap();
    assert_eq!(events[2]["Result"], json!({ "processed": 0, "last": null }));

    let bad = host
        .get(&format!("/instances/{id}?showHistory=maybe"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_deletes_finished_instances_only() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&id, "Running").await;

    let refused = host.delete(&format!("/instances/{id}")).await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert!(refused.message().contains("Running"), "{refused:?}");

    host.raise(&id, "operation", "\"end\"").await;
    host.wait_for_status(&id, "Completed").await;
    let purged = host.delete(&format!("/instances/{id}")).await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.body, json!({ "instancesDeleted": 1 }));
    assert_eq!(host.status(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        host.delete(&format!("/instances/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}
