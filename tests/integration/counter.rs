//! The stateful counter of seed 002 (E3_Counter), over HTTP.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestHost;

#[tokio::test(flavor = "multi_thread")]
async fn counter_walkthrough_of_the_durable_functions_sample() {
    let host = TestHost::start().await;

    // POST orchestrators/E3_Counter with no content: the count starts at zero.
    let started = host.post("/orchestrators/E3_Counter", "").await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let id = started.body["id"].as_str().unwrap();
    let status_uri = started.body["statusQueryGetUri"].as_str().unwrap();
    assert_eq!(started.header("location"), Some(status_uri));
    assert_eq!(status_uri, format!("{}/instances/{id}", host.base));
    assert_eq!(
        started.body["sendEventPostUri"],
        format!("{}/instances/{id}/raiseEvent/{{eventName}}", host.base)
    );
    assert_eq!(
        started.body["terminatePostUri"],
        format!("{}/instances/{id}/terminate?reason={{text}}", host.base)
    );
    assert_eq!(started.body["purgeHistoryDeleteUri"], status_uri);

    let running = host.wait_for_status(id, "Running").await;
    assert_eq!(running["name"], "E3_Counter");
    assert_eq!(running["instanceId"], id);
    assert_eq!(running["input"], json!(null));

    // Raise "incr" through the URI the host handed out.
    let send_event = started.body["sendEventPostUri"]
        .as_str()
        .unwrap()
        .replace("{eventName}", "operation");
    assert_eq!(
        host.post_url(&send_event, "\"incr\"").await.status,
        StatusCode::ACCEPTED
    );

    // The status shows the new count as the input, with 202 while running.
    host.wait_for(id, Duration::from_secs(30), |body| body["input"] == 1)
        .await;
    let reply = host.get_url(status_uri).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["runtimeStatus"], "Running");
    assert_eq!(reply.header("location"), Some(status_uri));
    assert!(reply.header("retry-after").is_some());
    for field in ["createdTime", "lastUpdatedTime"] {
        let time = reply.body[field].as_str().unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{field}: {time}");
    }

    // "end" completes it with the final count; a finished instance answers 200.
    assert_eq!(
        host.post_url(&send_event, "\"end\"").await.status,
        StatusCode::ACCEPTED
    );
    let done = host.wait_for_status(id, "Completed").await;
    assert_eq!(done["output"], 1);
    assert_eq!(host.get_url(status_uri).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_increments_count_to_a_thousand() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "").await;

    let statuses: Vec<StatusCode> = futures::stream::iter(0..1000)
        .map(|_| async { host.raise(&id, "operation", "\"incr\"").await.status })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::ACCEPTED)
    );

    host.wait_for(&id, Duration::from_secs(60), |body| body["input"] == 1000)
        .await;
    assert_eq!(
        host.raise(&id, "operation", "\"end\"").await.status,
        StatusCode::ACCEPTED
    );
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_raised_before_the_instance_runs_are_not_lost() {
    // Durable Functions drops events nobody waits for; Reprise buffers them.
    let host = TestHost::start().await;
    let id = host
        .start_instance("E3_Counter", Some("early-bird"), "5")
        .await;
    for operation in ["incr", "incr", "decr", "end"] {
        let reply = host
            .raise(&id, "OPERATION", &format!("\"{operation}\""))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_status_set_before_continue_as_new_is_kept() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "7").await;
    host.raise(&id, "operation", "\"double\"").await;
    let status = host
        .wait_for(&id, Duration::from_secs(30), |body| {
            !body["customStatus"].is_null()
        })
        .await;
    assert_eq!(status["customStatus"], "ignored unknown operation 'double'");
    assert_eq!(status["input"], 7);
}
