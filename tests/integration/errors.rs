//! Bad requests get a clear JSON error and change nothing.

use reqwest::StatusCode;

use crate::harness::TestHost;

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let host = TestHost::start().await;

    // Unknown orchestrator: 400 (as Durable Functions answers), naming what is loaded.
    let reply = host.post("/orchestrators/NoSuchThing", "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.message().contains("NoSuchThing") && reply.message().contains("E3_Counter"),
        "{reply:?}"
    );

    // Malformed input: 400, and no instance was created.
    let reply = host
        .post("/orchestrators/E3_Counter/malformed", "{\"count\":")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.message().contains("not valid JSON"), "{reply:?}");
    assert_eq!(host.status("malformed").await.status, StatusCode::NOT_FOUND);

    // Invalid instance IDs: 400 wherever an ID is taken.
    let too_long = "x".repeat(257);
    for id in [too_long.as_str(), "a%5Cb", "a%23b", "a%3Fb", "a%0Ab"] {
        let start = host
            .post(&format!("/orchestrators/E3_Counter/{id}"), "")
            .await;
        assert_eq!(
            start.status,
            StatusCode::BAD_REQUEST,
            "start {id}: {start:?}"
        );
        assert!(start.message().contains("instance ID"), "{start:?}");
        assert_eq!(
            host.status(id).await.status,
            StatusCode::BAD_REQUEST,
            "status {id}"
        );
    }

    // Unknown instance: 404 for status, events and termination.
    assert_eq!(host.status("nobody").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        host.raise("nobody", "operation", "1").await.status,
        StatusCode::NOT_FOUND
    );
    let terminate = host.post("/instances/nobody/terminate", "").await;
    assert_eq!(terminate.status, StatusCode::NOT_FOUND);
    assert!(terminate.message().contains("nobody"));

    // Malformed event payload: 400, and the counter did not see it.
    let id = host.start_instance("E3_Counter", None, "").await;
    let reply = host.raise(&id, "operation", "incr").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    host.raise(&id, "operation", "\"end\"").await;
    assert_eq!(host.wait_for_status(&id, "Completed").await["output"], 0);

    // Oversized bodies: 413 with a JSON message, decided from the declared
    // length before the body is read.
    let (status, body) = host.raw_request(
        "POST /runtime/webhooks/durabletask/orchestrators/E3_Counter/big HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n",
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("larger"),
        "{body}"
    );
    assert_eq!(host.status("big").await.status, StatusCode::NOT_FOUND);
    // A body over the limit without a declared length is cut off too.
    let huge = format!("\"{}\"", "x".repeat(2 << 20));
    let chunks = futures::stream::iter(
        huge.into_bytes()
            .chunks(64 << 10)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let reply = reqwest::Client::new()
        .post(format!("{}/orchestrators/E3_Counter/big", host.base))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(reply) = reply {
        assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert_eq!(host.status("big").await.status, StatusCode::NOT_FOUND);

    // Unknown routes and methods: JSON errors too.
    let reply = host.get("/nothing/here").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.message().contains("/runtime/webhooks/durabletask"),
        "{reply:?}"
    );
    let reply = host.get("/orchestrators/E3_Counter").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// `--db` (and `REPRISE_DB`) take a SQLite file or a PostgreSQL URL; any
/// other URL is refused at start-up, saying what it takes, as is a
/// PostgreSQL server that cannot be reached, and nothing is created (a URL
/// used to become a SQLite file in a folder named after its scheme).
#[test]
fn a_database_that_cannot_be_used_is_refused_at_start_up_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let refusals = [
        ("mysql://root@db/reprise", "'mysql://' is not a database"),
        (
            // Nothing listens on port 1.
            "postgres://postgres@127.0.0.1:1/reprise",
            "cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/reprise",
        ),
    ];
    for (url, needle) in refusals {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("REPRISE_DB", url)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{url} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{stderr}");
    }
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(created.is_empty(), "{created:?}");
}
