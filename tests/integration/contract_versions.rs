//! The WIT contract's versions: a component built against an earlier
//! version of `reprise:orchestration` keeps running on this host, its
//! instances included, whether they started on this host or on one from
//! before it was deployed.
//!
//! The fixture `tests/fixtures/wit-0.1.0/legacy.wasm` was built with the
//! 0.1.0 SDK from `tests/guests/legacy` (which the harness also builds
//! with today's SDK), and `host-a734fd3.db` is a database the 0.1.0 host
//! (commit a734fd3) left with instances of it waiting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestHost, components, on_sqlite, version_of};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/wit-0.1.0")
        .join(name)
}

/// What `Legacy` returns after "go" with payload "now".
fn legacy_output() -> Value {
    json!([
        "go:now",
        "echo:echo hello",
        "broken:true",
        "slept",
        "child:echo child",
        "failing:true",
        "self:note"
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_0_component_runs_every_case_of_its_contract() {
    let legacy = fixture("legacy.wasm");
    let host = TestHost::start_with(&[&legacy]).await;

    let id = host.start_instance("Legacy", None, "null").await;
    let running = host.wait_for_status(&id, "Running").await;
    assert_eq!(running["componentVersion"], version_of(&legacy).as_str());
    host.raise(&id, "go", "\"now\"").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(
        (&done["output"], &done["customStatus"]),
        (&legacy_output(), &json!("done"))
    );

    let counter = host.start_instance("LegacyCounter", None, "[0, 3]").await;
    host.raise(&counter, "add", "1").await;
    host.raise(&counter, "add", "2").await;
    let done = host.wait_for_status(&counter, "Completed").await;
    assert_eq!(done["output"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_pinned_to_a_0_1_0_build_finishes_on_it_after_a_0_2_0_build_replaces_it() {
    let (legacy, rebuilt) = (fixture("legacy.wasm"), &components().legacy);
    let mut host = TestHost::prepare(&[]);
    let deployed = host.functions_dir().join("legacy.wasm");
    std::fs::copy(&legacy, &deployed).unwrap();
    host = host.started().await;

    let pinned = host.start_instance("Legacy", None, "null").await;
    host.wait_for_status(&pinned, "Running").await;
    std::fs::copy(rebuilt, &deployed).unwrap();
    host.wait_for_log("replaced").await;
    let fresh = host.start_instance("Legacy", None, "null").await;
    let running = host.wait_for_status(&fresh, "Running").await;
    assert_eq!(running["componentVersion"], version_of(rebuilt).as_str());

    // Killed, so the pinned instance replays cold, on the stored 0.1.0 build.
    host.kill();
    host.restart().await;
    for id in [&pinned, &fresh] {
        host.raise(id, "go", "\"now\"").await;
    }
    let done = host.wait_for_status(&pinned, "Completed").await;
    assert_eq!(
        (&done["output"], &done["componentVersion"]),
        (&legacy_output(), &version_of(&legacy).as_str().into())
    );
    let done = host.wait_for_status(&fresh, "Completed").await;
    assert_eq!(done["output"], legacy_output());
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_the_0_1_0_host_left_waiting_finish_on_this_one() {
    if !on_sqlite() {
        return;
    }
    // Deployed with the host: the same functions rebuilt with today's SDK.
    // The instances keep their 0.1.0 build (from the database, where the
    // old host stored it); the children they start now run on the new one.
    let mut host = TestHost::prepare(&[&components().legacy]);
    std::fs::copy(fixture("host-a734fd3.db"), host.database()).unwrap();
    host = host.started().await;
    let version = version_of(&fixture("legacy.wasm"));

    // Finished there: its history, as the old host stored it, still reads.
    let finished = host.history("finished-legacy").await;
    assert_eq!(finished["output"], legacy_output());
    assert!(
        finished["historyEvents"].as_array().unwrap().len() > 10,
        "{finished}"
    );

    let waiting = host.wait_for_status("pinned-legacy", "Running").await;
    assert_eq!(waiting["componentVersion"], version.as_str());
    host.raise("pinned-legacy", "go", "\"now\"").await;
    let done = host.wait_for_status("pinned-legacy", "Completed").await;
    assert_eq!(done["output"], legacy_output());

    // Continued as new once under the old host (1 of 3); one more "add".
    let counter = host.status("pinned-counter").await.body;
    assert_eq!(counter["input"], json!([1, 3]));
    host.raise("pinned-counter", "add", "2").await;
    let done = host
        .wait_for("pinned-counter", Duration::from_secs(30), |body| {
            body["runtimeStatus"] == "Completed"
        })
        .await;
    assert_eq!(done["output"], 3);
}
