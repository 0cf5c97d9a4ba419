//! Sub-orchestrations and events between instances.

use serde_json::{Value, json};

use crate::harness::{TestHost, components};

async fn host() -> TestHost {
    let c = components();
    TestHost::start_with(&[&c.misbehaving, &c.counter, &c.fan_out_fan_in]).await
}

/// Runs `Parent` calling the child `call` names, to its end: its ID and
/// what it reports (the child's output, or its error).
async fn parent(host: &TestHost, call: &str) -> (String, Value) {
    let id = host.start_instance("Parent", None, call).await;
    let mut done = host.wait_for_status(&id, "Completed").await;
    (id, done["output"].take())
}

/// The first event of type `kind` in `id`'s history.
async fn history_event(host: &TestHost, id: &str, kind: &str) -> Value {
    let history = host.history(id).await;
    history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["EventType"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("{history}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_gets_its_childs_output() {
    let host = host().await;
    let id = host
        .start_instance(
            "Parent",
            Some("parent"),
            r#"{"orchestrator": "FanOutFanIn", "input": 10}"#,
        )
        .await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], json!({ "output": 385 }));
    // The child ran as its own instance, under an ID derived from the parent's.
    let child = host.wait_for_status("parent:0:0", "Completed").await;
    assert_eq!(child["output"], 385);

    let types = host.event_types("parent").await;
    // Finished children show as their completion, as in Durable Functions.
    assert!(
        !types
            .iter()
            .any(|kind| kind == "SubOrchestrationInstanceCreated"),
        "{types:?}"
    );
    // And it names the child, for whoever wants to follow it there.
    let completed = history_event(&host, "parent", "SubOrchestrationInstanceCompleted").await;
    assert_eq!(completed["InstanceId"], "parent:0:0", "{completed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_missing_child_is_an_error_the_parent_sees() {
    let host = host().await;
    let failing =
        r#"{"orchestrator": "CallActivity", "input": {"activity": "AlwaysFails", "input": 1}}"#;
    let (_, output) = parent(&host, failing).await;
    let error = output["error"].as_str().unwrap();
    assert!(
        error.contains("sub-orchestration 'CallActivity' failed") && error.contains("refusing 1"),
        "{error}"
    );
    assert_eq!(
        (&output["kind"], &output["retryable"]),
        (&json!("error"), &json!(true))
    );

    let (_, output) = parent(&host, r#"{"orchestrator": "Nobody"}"#).await;
    let error = output["error"].as_str().unwrap();
    assert!(
        error.contains("no orchestrator named 'Nobody' is loaded"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_that_failed_with_an_error_of_its_own_hands_the_parent_its_kind() {
    let host = host().await;
    let refused = r#"{"orchestrator": "CallActivity",
        "input": {"activity": "AlwaysFails", "input": {"kind": "validation"}}}"#;
    let (id, output) = parent(&host, refused).await;
    assert_eq!(
        (&output["kind"], &output["retryable"]),
        (&json!("validation"), &json!(false)),
        "{output}"
    );
    let error = output["error"].as_str().unwrap();
    assert!(error.contains("refusing"), "{error}");
    // The parent's history shows it as Durable Functions' failure details.
    let failed = history_event(&host, &id, "SubOrchestrationInstanceFailed").await;
    assert_eq!(
        failed["FailureDetails"]["ErrorType"], "validation",
        "{failed}"
    );

    // A child that crashed has no error of its own: a retryable `failed`.
    let (_, output) = parent(&host, r#"{"orchestrator": "Panics", "input": "boom"}"#).await;
    assert_eq!(
        (&output["kind"], &output["retryable"]),
        (&json!("failed"), &json!(true)),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_id_in_use_fails_the_call_without_touching_that_instance() {
    let host = host().await;
    host.start_instance("E3_Counter", Some("taken"), "5").await;
    host.wait_for_status("taken", "Running").await;
    let taken = r#"{"orchestrator": "E3_Counter", "instanceId": "taken"}"#;
    let (_, output) = parent(&host, taken).await;
    let error = output["error"].as_str().unwrap();
    assert!(error.contains("'taken' already exists"), "{error}");
    assert_eq!(host.status("taken").await.body["input"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn terminating_a_parent_terminates_its_running_children() {
    let host = host().await;
    let id = host
        .start_instance(
            "Parent",
            Some("boss"),
            r#"{"orchestrator": "E3_Counter", "instanceId": "worker"}"#,
        )
        .await;
    host.wait_for_status("worker", "Running").await;
    host.post(&format!("/instances/{id}/terminate?reason=shutdown"), "")
        .await;
    host.wait_for_status(&id, "Terminated").await;
    let child = host.wait_for_status("worker", "Terminated").await;
    assert_eq!(child["output"], "its parent boss was terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orchestrator_can_send_events_to_another_instance() {
    let host = host().await;
    let counter = host.start_instance("E3_Counter", Some("target"), "").await;
    let send = r#"{"instanceId": "target", "name": "operation", "payload": "incr", "times": 3}"#;
    let sender = host.start_instance("Sender", None, send).await;
    host.wait_for_status(&sender, "Completed").await;
    host.wait_for(&counter, std::time::Duration::from_secs(30), |body| {
        body["input"] == 3
    })
    .await;
}
