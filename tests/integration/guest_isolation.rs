//! Guests are contained: a guest that traps, loops or eats memory fails its
//! own instance with a clear reason; the host and other instances carry on.
//! Orchestrators see only replay-safe time and randomness, and no filesystem,
//! environment or network; changed code is caught on replay.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{TestHost, components};

async fn failure_of(host: &TestHost, name: &str, input: &str) -> String {
    let id = host.start_instance(name, None, input).await;
    let failed = host
        .wait_for(&id, Duration::from_secs(60), |body| {
            body["runtimeStatus"] == "Failed"
        })
        .await;
    failed["output"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_guests_fail_their_own_instance_and_nothing_else() {
    let components = components();
    let host = TestHost::prepare(&[&components.misbehaving, &components.counter])
        .with_args(&["--fuel-per-step", "50000000", "--guest-memory-mib", "64"])
        .started()
        .await;
    // A healthy instance, running throughout.
    let counter = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&counter, "Running").await;

    let panic = failure_of(&host, "Panics", "\"the sky is falling\"").await;
    assert!(
        panic.contains("the sky is falling"),
        "the panic message is reported: {panic}"
    );
    assert!(
        panic.contains("wasm backtrace"),
        "a wasm backtrace is reported: {panic}"
    );

    let runaway = failure_of(&host, "LoopsForever", "null").await;
    assert!(
        runaway.contains("exceeded its fuel budget of 50000000"),
        "{runaway}"
    );

    let bomb = failure_of(&host, "EatsMemory", "null").await;
    assert!(
        bomb.contains("exceeded its memory limit of 64 MiB"),
        "{bomb}"
    );
    assert!(
        bomb.contains("memory allocation of"),
        "the guest's own report is kept: {bomb}"
    );

    let endless = failure_of(&host, "ContinuesForever", "null").await;
    assert!(
        endless.contains("continued as new 10000 times in a row"),
        "{endless}"
    );

    // The host is fine and so is the other instance.
    assert_eq!(
        host.raise(&counter, "operation", "\"incr\"").await.status,
        StatusCode::ACCEPTED
    );
    host.raise(&counter, "operation", "\"end\"").await;
    assert_eq!(
        host.wait_for_status(&counter, "Completed").await["output"],
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrators_see_replay_safe_time_and_randomness_and_no_outside_world() {
    let host = TestHost::start_with(&[&components().misbehaving]).await;
    let id = host.start_instance("Probe", None, "").await;
    let running = host.wait_for_status(&id, "Running").await;
    let uuid_of_first_episode = running["customStatus"].as_str().unwrap().to_owned();

    // The second episode replays the first from scratch: the same UUID and
    // the same custom status, or it would fail as non-deterministic.
    tokio::time::sleep(Duration::from_millis(20)).await;
    host.raise(&id, "go", "null").await;
    let done = host.wait_for_status(&id, "Completed").await;
    let probe = &done["output"];
    assert_eq!(probe["uuid"], uuid_of_first_episode.as_str(), "{probe}");
    assert_eq!(probe["wallClockIsEpisodeTime"], true, "{probe}");
    assert_eq!(probe["wallClockNow"], probe["contextNow"], "{probe}");
    for denied in ["readDir", "openFile", "tcpConnect"] {
        assert_ne!(probe[denied], "allowed", "{denied}: {probe}");
    }
    assert_eq!(probe["envVars"], 0, "{probe}");
    assert_eq!(probe["args"], 0, "{probe}");

    // Another instance gets other UUIDs.
    let other = host.start_instance("Probe", None, "").await;
    let other_uuid: Value = host.wait_for_status(&other, "Running").await["customStatus"].clone();
    assert_ne!(other_uuid, uuid_of_first_episode.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_a_history_with_changed_code_fails_with_a_non_determinism_error() {
    let components = components();
    let mut host = TestHost::prepare(&[]);
    let deployed = host.functions_dir().join("changing.wasm");
    std::fs::copy(&components.changing_v1, &deployed).unwrap();
    host = host.started().await;
    let id = host.start_instance("Changing", None, "").await;
    assert_eq!(
        host.wait_for_status(&id, "Running").await["customStatus"],
        "v1"
    );

    // An instance from before versions were recorded replays on whatever
    // file serves its orchestrator: deploy v2 over v1 for it. (Instances
    // that record their version keep replaying on it: see versions.rs.)
    host.kill();
    host.alter_database("UPDATE instances SET version = NULL");
    std::fs::copy(&components.changing_v2, &deployed).unwrap();
    host.restart().await;
    host.raise(&id, "go", "\"now\"").await;
    let failed = host.wait_for_status(&id, "Failed").await;
    let error = failed["output"].as_str().unwrap();
    assert!(error.contains("non-determinism"), "{error}");
    assert!(
        error.contains(r#"recorded as set-custom-status("v1")"#)
            && error.contains(r#"takes set-custom-status("v2")"#),
        "the error names both actions: {error}"
    );
}
