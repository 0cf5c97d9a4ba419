//! Direct episodes (`engine/direct.rs`): a start's first episode, and an
//! event to an instance with a warm execution, are applied in the
//! transaction that accepts them, so the 202 already reflects them. A step
//! too long to run inside a request goes to a worker instead, with the
//! full fuel budget. (That nothing is lost or applied
//! twice across a kill is `durability.rs`, which now runs on this path.)

use crate::harness::{TestHost, components};

#[tokio::test(flavor = "multi_thread")]
async fn a_start_and_an_event_are_applied_by_the_time_they_are_accepted() {
    let components = components();
    let host = TestHost::start_with(&[&components.startup_probe, &components.counter]).await;

    let trivial = host.start_instance("StartupProbe_0000", None, "").await;
    let status = host.status(&trivial).await.body;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");

    let counter = host.start_instance("E3_Counter", None, "0").await;
    assert_eq!(host.status(&counter).await.body["runtimeStatus"], "Running");
    for count in 1..=3 {
        let reply = host.raise(&counter, "operation", "\"incr\"").await;
        assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED);
        let status = host.status(&counter).await.body;
        assert_eq!(status["input"], count, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_step_too_long_for_a_request_runs_on_a_worker_with_the_full_budget() {
    // The default budget, 2,000,000,000 units: far more than a request
    // runs inline. Had the inline attempt's smaller budget been taken for
    // the guest's own failure, the error would name that smaller figure.
    let host = TestHost::start_with(&[&components().misbehaving]).await;
    let id = host.start_instance("LoopsForever", None, "").await;
    // Burning the full budget takes seconds, more on a loaded machine.
    let failed = host
        .wait_for(&id, std::time::Duration::from_secs(180), |body| {
            body["runtimeStatus"] == "Failed"
        })
        .await;
    let error = failed["output"].as_str().unwrap();
    assert!(
        error.contains("exceeded its fuel budget of 2000000000 units"),
        "{error}"
    );
}
