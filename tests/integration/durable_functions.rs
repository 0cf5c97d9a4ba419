//! What Durable Functions clients rely on, request by request: how paths
//! and parameters are read, the error body, the status codes they branch
//! on. The official clients themselves are driven in `clients.rs`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestHost, components};

async fn host() -> TestHost {
    let c = components();
    TestHost::start_with(&[&c.counter, &c.hello_sequence, &c.http_fetch]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_slashes_and_the_case_of_route_words_do_not_matter() {
    let host = host().await;
    let id = host
        .start_instance("E3_Counter", Some("slashes"), "0")
        .await;
    host.wait_for_status(&id, "Running").await;

    let listed = host.get("/instances/?instanceIdPrefix=slash").await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(
        host.get("/Instances/slashes/").await.status,
        StatusCode::ACCEPTED
    );

    let raised = host
        .post("/instances/slashes/RaiseEvent/operation/", "\"incr\"")
        .await;
    assert_eq!(raised.status, StatusCode::ACCEPTED, "{raised:?}");
    let suspended = host.post("/instances/slashes/SUSPEND?reason=x", "").await;
    assert_eq!(suspended.status, StatusCode::ACCEPTED, "{suspended:?}");
    host.wait_for_status(&id, "Suspended").await;
    let terminated = host.post("/instances/slashes/Terminate/", "").await;
    assert_eq!(terminated.status, StatusCode::ACCEPTED, "{terminated:?}");
    host.wait_for_status(&id, "Terminated").await;

    // A bulk purge through `instances/` deletes what it says it deleted.
    let purged = host
        .delete("/instances/?createdTimeFrom=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(purged.body, json!({ "instancesDeleted": 1 }), "{purged:?}");
    assert_eq!(host.status(&id).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_the_message_under_the_names_clients_read() {
    let host = host().await;
    let reply = host.post("/orchestrators/NoSuchThing", "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.message().to_owned();
    assert!(message.contains("NoSuchThing"), "{message}");
    assert_eq!(reply.body["Message"], message.as_str());
    assert_eq!(reply.body["ExceptionMessage"], message.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_hub_must_be_this_hosts_and_other_scopes_are_refused() {
    let host = host().await;
    let ours = host
        .post("/orchestrators/E3_Counter/hub?taskHub=Reprise", "0")
        .await;
    assert_eq!(ours.status, StatusCode::ACCEPTED, "{ours:?}");

    for (query, needle) in [
        ("taskHub=OtherHub", "OtherHub"),
        ("connection=Storage", "connection"),
        ("version=2.0", "version"),
    ] {
        let reply = host
            .post(&format!("/orchestrators/E3_Counter/other?{query}"), "0")
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {reply:?}");
        assert!(reply.message().contains(needle), "{reply:?}");
    }
    assert_eq!(host.status("other").await.status, StatusCode::NOT_FOUND);
    let reply = host.get("/instances/hub?taskHub=OtherHub").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_and_codes_follow_durable_functions() {
    let host = host().await;
    // Denied network: the activity fails, and so does the instance.
    let failed = host
        .start_instance("FetchStatus", Some("failing"), "\"http://127.0.0.1:9/\"")
        .await;
    host.wait_for_status(&failed, "Failed").await;
    let plain = host.get("/instances/failing").await;
    assert_eq!(plain.status, StatusCode::OK);
    let strict = host
        .get("/instances/failing?returnInternalServerErrorOnFailure=true")
        .await;
    assert_eq!(strict.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(strict.body["runtimeStatus"], "Failed");

    // Without the input, the key stays: the JS client requires it.
    let hidden = host.get("/instances/failing?showInput=false").await;
    assert_eq!(hidden.body.get("input"), Some(&Value::Null), "{hidden:?}");

    let started = host.post("/orchestrators/E3_Counter/live", "0").await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    assert!(started.header("retry-after").is_some(), "{started:?}");
    host.wait_for_status("live", "Running").await;
    let rewind = host.post("/instances/live/rewind", "").await;
    assert_eq!(rewind.status, StatusCode::PRECONDITION_FAILED, "{rewind:?}");
    let purge = host.delete("/instances/live").await;
    assert_eq!(purge.status, StatusCode::PRECONDITION_FAILED, "{purge:?}");
    let restart = host.post("/instances/nobody/restart", "").await;
    assert_eq!(restart.status, StatusCode::NOT_FOUND);

    // Canceled is a Durable Functions status no Reprise instance is in.
    let canceled = host.get("/instances?runtimeStatus=Canceled").await;
    assert_eq!(canceled.body, json!([]), "{canceled:?}");
    let either = host.get("/instances?runtimeStatus=canceled,failed").await;
    let ids: Vec<&str> = either
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|status| status["instanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["failing"]);
    let nothing = host
        .delete("/instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Canceled")
        .await;
    assert_eq!(nothing.status, StatusCode::NOT_FOUND);
    assert_eq!(host.status("failing").await.status, StatusCode::OK);
    // A malformed time is refused even when no status can match.
    let malformed = host
        .get("/instances?runtimeStatus=Canceled&createdTimeFrom=yesterday")
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{malformed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_binding_points_at_this_host_and_its_urls_work() {
    let host = host().await;
    let binding = host.get("/durableClient").await.body;
    assert_eq!(binding["taskHubName"], "reprise");
    assert_eq!(binding["rpcBaseUrl"], format!("{}/", host.base));
    assert_eq!(binding["baseUrl"], host.base.as_str());
    let create = binding["creationUrls"]["createNewInstancePostUri"]
        .as_str()
        .unwrap()
        .replace("{functionName}", "E3_Counter")
        .replace("[/{instanceId}]", "/bound");
    assert_eq!(
        host.post_url(&create, "0").await.status,
        StatusCode::ACCEPTED
    );
    let urls = &binding["managementUrls"];
    let url = |name: &str| urls[name].as_str().unwrap().replace("INSTANCEID", "bound");
    let raise = url("sendEventPostUri").replace("{eventName}", "operation");
    assert_eq!(
        host.post_url(&raise, "\"end\"").await.status,
        StatusCode::ACCEPTED
    );
    host.wait_for_status("bound", "Completed").await;
    let status = host.get_url(&url("statusQueryGetUri")).await;
    assert_eq!(status.body["output"], 0, "{status:?}");
}
