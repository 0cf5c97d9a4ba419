//! Backpressure: when too many instances wait for a worker, new starts and
//! events get 503 with Retry-After (nothing is queued for them), while
//! terminations still go through; the host recovers once work drains.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{TestHost, components};

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backlog_answers_503_with_retry_after_and_recovers() {
    let host = TestHost::prepare(&[&components().misbehaving])
        .with_args(&[
            "--workers",
            "1",
            "--max-backlog",
            "2",
            "--fuel-per-step",
            "6000000000",
        ])
        .started()
        .await;
    // One runs (burning fuel for a while), one waits for the only worker.
    let busy = host.start_instance("LoopsForever", None, "").await;
    let waiting = host.start_instance("LoopsForever", None, "").await;

    let refused = host.post("/orchestrators/LoopsForever", "").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.message().contains("overloaded"),
        "{:?}",
        refused.body
    );
    let event = host.raise(&waiting, "anything", "").await;
    assert_eq!(event.status, StatusCode::SERVICE_UNAVAILABLE);
    let listed = host.get("/instances").await.body;
    assert_eq!(listed.as_array().unwrap().len(), 2, "nothing was created");

    // Terminating relieves the load, so it is always accepted.
    let reply = host
        .post(&format!("/instances/{waiting}/terminate"), "")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);

    // Once the runaway has used up its fuel, the host takes work again.
    // Burning that much fuel takes many seconds, more on a loaded machine.
    host.wait_for(&busy, Duration::from_secs(180), |body| {
        body["runtimeStatus"] == "Failed"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = host.post("/orchestrators/Probe", "").await;
        if reply.status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the backlog never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
