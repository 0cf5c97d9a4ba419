//! Singletons (seeds 000 and 001): one instance per well-known ID, with the
//! check and the create in one transaction, so there is no race.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestHost;

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_concurrent_starts_of_one_id_create_exactly_one_instance() {
    let host = TestHost::start().await;
    let replies: Vec<(StatusCode, String)> = futures::stream::iter(0..100)
        .map(|n| {
            let host = &host;
            async move {
                let reply = host
                    .post(
                        "/orchestrators/SingletonJob/nightly-report",
                        &format!("{{\"processed\":{n}}}"),
                    )
                    .await;
                let message = reply.body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (reply.status, message)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let accepted = replies
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .count();
    let conflicts: Vec<&String> = replies
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .map(|(_, message)| message)
        .collect();
    assert_eq!((accepted, conflicts.len()), (1, 99), "{replies:?}");
    assert!(
        conflicts
            .iter()
            .all(|message| message.contains("nightly-report")
                && (message.contains("Pending") || message.contains("Running"))),
        "{conflicts:?}"
    );
    host.wait_for_status("nightly-report", "Running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_singleton_starts_again_under_the_same_id() {
    let host = TestHost::start().await;
    let id = host.start_instance("SingletonJob", Some("job"), "").await;
    assert_eq!(id, "job");
    for item in ["a", "b"] {
        assert_eq!(
            host.raise("job", "command", &format!("\"{item}\""))
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        host.raise("job", "command", "\"stop\"").await.status,
        StatusCode::ACCEPTED
    );
    let first = host.wait_for_status("job", "Completed").await;
    assert_eq!(first["output"], json!({ "processed": 2, "last": "b" }));

    // Finished: the same ID starts a fresh run with the new input.
    let again = host
        .post("/orchestrators/SingletonJob/job", r#"{"processed":10}"#)
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{again:?}");
    let running = host.wait_for_status("job", "Running").await;
    assert_eq!(running["input"], json!({ "processed": 10 }));
    assert_eq!(running["output"], json!(null));
    assert_eq!(running["customStatus"], json!({ "processed": 10 }));

    // And while it runs, another start is refused.
    let refused = host.post("/orchestrators/SingletonJob/job", "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.message().contains("Running"), "{refused:?}");
}
