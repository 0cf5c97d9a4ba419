//! Managing many instances: queries with filters and stable paging, bulk
//! purge, and restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU16;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestHost, components, health_server};

const TOKEN: &str = "x-ms-continuation-token";

/// Walks every page of `GET instances?{query}`; `between` runs after each page.
async fn walk(host: &TestHost, query: &str, mut between: impl AsyncFnMut()) -> Vec<Value> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let url = format!("{}/instances?{query}", host.base);
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = &token {
            request = request.header(TOKEN, token);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        token = reply
            .headers()
            .get(TOKEN)
            .map(|value| value.to_str().unwrap().to_owned());
        let page: Vec<Value> = reply.json().await.unwrap();
        all.extend(page);
        if token.is_none() {
            return all;
        }
        between().await;
    }
    panic!("paging did not end");
}

fn ids(instances: &[Value]) -> Vec<String> {
    instances
        .iter()
        .map(|instance| instance["instanceId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_filter_and_page_stably_while_instances_are_created() {
    let host = TestHost::start().await;
    for n in 0..12 {
        host.start_instance("E3_Counter", Some(&format!("page-{n:02}")), "")
            .await;
    }
    for n in 0..3 {
        let id = host
            .start_instance("E1_HelloSequence", Some(&format!("done-{n}")), "")
            .await;
        host.wait_for_status(&id, "Completed").await;
    }

    let mut created = 0;
    let seen = walk(&host, "instanceIdPrefix=page-&top=5", async || {
        created += 1;
        host.start_instance("E3_Counter", Some(&format!("page-new-{created}")), "")
            .await;
    })
    .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in ids(&seen) {
        *counts.entry(id).or_default() += 1;
    }
    for n in 0..12 {
        assert_eq!(counts.get(&format!("page-{n:02}")), Some(&1), "{counts:?}");
    }
    assert!(counts.values().all(|count| *count == 1), "{counts:?}");
    assert!(seen[0].get("input").is_some(), "showInput defaults to true");

    let done = walk(
        &host,
        "runtimeStatus=Completed&showInput=false",
        async || {},
    )
    .await;
    assert_eq!(ids(&done), ["done-0", "done-1", "done-2"]);
    assert_eq!(done[0]["input"], Value::Null);
    assert_eq!(
        done[0]["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );

    let both = walk(
        &host,
        "runtimeStatus=Completed,Running&top=1000",
        async || {},
    )
    .await;
    assert!(both.len() >= 15, "{}", both.len());
    let future = walk(&host, "createdTimeFrom=2999-01-01T00:00:00Z", async || {}).await;
    assert!(future.is_empty());
    let past = walk(&host, "createdTimeTo=2000-01-01T00:00:00Z", async || {}).await;
    assert!(past.is_empty());

    for bad in [
        "top=0",
        "top=many",
        "runtimeStatus=Sleeping",
        "createdTimeFrom=yesterday",
        "showInput=perhaps",
    ] {
        let reply = host.get(&format!("/instances?{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.message().len() > 10, "{bad}: {:?}", reply.body);
    }
    let forged = reqwest::Client::new()
        .get(format!("{}/instances", host.base))
        .header(TOKEN, "bnVsbA==")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_purge_deletes_finished_instances_only() {
    let host = TestHost::start().await;
    let running = host.start_instance("E3_Counter", None, "").await;
    let mut finished = Vec::new();
    for _ in 0..3 {
        let id = host.start_instance("E1_HelloSequence", None, "").await;
        host.wait_for_status(&id, "Completed").await;
        finished.push(id);
    }

    let reply = host.delete("/instances").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.message().contains("createdTimeFrom"),
        "{:?}",
        reply.body
    );

    let reply = host
        .delete("/instances?createdTimeFrom=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({ "instancesDeleted": 3 }));
    for id in &finished {
        assert_eq!(host.status(id).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        host.status(&running).await.body["runtimeStatus"],
        "Running",
        "unfinished instances are never purged"
    );

    let reply = host
        .delete("/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Completed")
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_runs_the_original_input_again_under_a_new_or_the_same_id() {
    let host = TestHost::start().await;
    // A counter that started at 5 and counted to 6 before it was terminated.
    let id = host
        .start_instance("E3_Counter", Some("restartable"), "5")
        .await;
    host.raise(&id, "operation", "\"incr\"").await;
    host.wait_for(&id, std::time::Duration::from_secs(30), |body| {
        body["input"] == 6
    })
    .await;

    let reply = host
        .post(
            &format!("/instances/{id}/restart?restartWithNewInstanceId=false"),
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "it is still running");

    let reply = host.post(&format!("/instances/{id}/restart"), "").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let fresh = reply.body["id"].as_str().unwrap().to_owned();
    assert_ne!(fresh, id);
    assert!(
        reply.body["restartPostUri"]
            .as_str()
            .unwrap()
            .ends_with("/restart")
    );
    let status = host.wait_for_status(&fresh, "Running").await;
    assert_eq!(
        status["input"], 5,
        "the original input, not the current one"
    );

    host.post(&format!("/instances/{id}/terminate"), "").await;
    host.wait_for_status(&id, "Terminated").await;
    let reply = host
        .post(
            &format!("/instances/{id}/restart?restartWithNewInstanceId=false"),
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["id"], id);
    let status = host.wait_for_status(&id, "Running").await;
    assert_eq!(status["input"], 5);

    let reply = host.post("/instances/nobody/restart", "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn rewind_runs_a_failed_activity_again_once_its_cause_is_fixed() {
    let port = health_server(Arc::new(AtomicU16::new(200))).await;
    let url = format!("\"http://127.0.0.1:{port}/health\"");
    // The host is not allowed to reach the server yet: the activity fails.
    let host = TestHost::start_with(&[&components().http_fetch, &components().counter]).await;
    let id = host.start_instance("FetchStatus", None, &url).await;
    let failed = host.wait_for_status(&id, "Failed").await;
    assert!(
        failed["output"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied")
    );

    let running = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&running, "Running").await;
    let reply = host.post(&format!("/instances/{running}/rewind"), "").await;
    assert_eq!(
        reply.status,
        StatusCode::PRECONDITION_FAILED,
        "{:?}",
        reply.body
    );
    let reply = host.post("/instances/nobody/rewind", "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // The operator fixes the configuration, then rewinds.
    let allow = format!("127.0.0.1:{port}");
    let mut host = host.with_args(&["--allow-http-host", &allow]);
    host.restart().await;
    let reply = host
        .post(&format!("/instances/{id}/rewind?reason=allowed"), "")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], json!({ "status": 200, "body": "ok" }));

    let kinds = host.event_types(&id).await;
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "ExecutionRewound",
            "TaskCompleted",
            "ExecutionCompleted"
        ]
    );
    let reply = host.post(&format!("/instances/{id}/rewind"), "").await;
    assert_eq!(
        reply.status,
        StatusCode::GONE,
        "a completed instance stays completed"
    );
}
