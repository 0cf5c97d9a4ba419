//! Component versions: the functions folder is watched while the host
//! serves; each instance stays on the version it started on (across file
//! replacements, deletions and restarts) until a continue-as-new moves it
//! to the current one; versions nobody needs are deleted.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{TestHost, components, version_of};

#[tokio::test(flavor = "multi_thread")]
async fn files_added_replaced_and_removed_while_serving_take_effect_and_instances_keep_their_version()
 {
    let components = components();
    let host = TestHost::prepare(&[&components.counter]);
    let folder = host.functions_dir();
    let deployed = folder.join("changing.wasm");
    std::fs::copy(&components.changing_v1, &deployed).unwrap();
    let host = host.with_args(&["--version-gc-secs", "1"]).started().await;
    let (v1, v2) = (
        version_of(&components.changing_v1),
        version_of(&components.changing_v2),
    );

    let plain = host.start_instance("Changing", None, "").await;
    let eternal = host.start_instance("ChangingEternal", None, "").await;
    let with_activity = host.start_instance("ChangingWithActivity", None, "").await;
    for id in [&plain, &eternal, &with_activity] {
        let status = host.wait_for_status(id, "Running").await;
        assert_eq!(status["componentVersion"], v1.as_str());
    }

    // Added: servable without a restart.
    std::fs::copy(
        &components.hello_sequence,
        folder.join("hello_sequence.wasm"),
    )
    .unwrap();
    host.wait_for_log("hello_sequence.wasm: E1_HelloSequence, E1_SayHello (activity)")
        .await;
    let hello = host.start_instance("E1_HelloSequence", None, "").await;
    host.wait_for_status(&hello, "Completed").await;

    // Replaced: new starts get v2...
    std::fs::copy(&components.changing_v2, &deployed).unwrap();
    host.wait_for_log("replaced").await;
    let fresh = host.start_instance("Changing", None, "").await;
    let status = host.wait_for_status(&fresh, "Running").await;
    assert_eq!(
        (&status["customStatus"], &status["componentVersion"]),
        (&"v2".into(), &v2.as_str().into())
    );
    // ...while instances started on v1 replay on v1 (no non-determinism)...
    host.raise(&plain, "go", "\"done\"").await;
    let done = host.wait_for_status(&plain, "Completed").await;
    assert_eq!(
        (
            &done["output"],
            &done["customStatus"],
            &done["componentVersion"]
        ),
        (&"done".into(), &"v1".into(), &v1.as_str().into())
    );
    // ...and run their activities from v1.
    host.raise(&with_activity, "go", "\"\"").await;
    let done = host.wait_for_status(&with_activity, "Completed").await;
    assert_eq!(done["output"], "v1");
    // Continue-as-new moves an eternal orchestration to the current version.
    host.raise(&eternal, "next", "\"\"").await;
    let moved = host
        .wait_for(&eternal, Duration::from_secs(30), |body| {
            body["customStatus"] == "v2"
        })
        .await;
    assert_eq!(
        (&moved["componentVersion"], &moved["input"]),
        (&v2.as_str().into(), &1.into())
    );

    // Removed: no new starts.
    std::fs::remove_file(folder.join("hello_sequence.wasm")).unwrap();
    host.wait_for_log("removed").await;
    let reply = host.post("/orchestrators/E1_HelloSequence", "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let listed = host.get("/functions").await.body;
    let versions: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|function| function["file"] == "changing.wasm")
        .map(|function| function["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, [v2.as_str(); 4]);

    // Nothing runs on v1 or on the removed file any more: both are
    // deleted from the store; the served versions stay.
    let mut expected = vec![version_of(&components.counter), v2.clone()];
    expected.sort();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while host.database_rows("SELECT version FROM components ORDER BY version") != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "stored: {:?}",
            host.database_rows("SELECT version FROM components")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Logged just after the deletion was committed.
    host.wait_for_log("component versions no instance needs")
        .await;
    // The instance on v2 is unaffected.
    host.raise(&fresh, "go", "\"still fine\"").await;
    assert_eq!(
        host.wait_for_status(&fresh, "Completed").await["output"],
        "still fine"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_keeps_its_version_after_a_bad_deploy_a_deletion_and_a_restart() {
    let components = components();
    let mut host = TestHost::start_with(&[&components.changing_v1]).await;
    let deployed = host.functions_dir().join("changing_v1.wasm");
    let id = host.start_instance("Changing", None, "").await;
    host.wait_for_status(&id, "Running").await;

    // A broken file over a good one: the good version keeps serving.
    std::fs::write(&deployed, b"\0asm garbage").unwrap();
    host.wait_for_log("still serving its previous version")
        .await;
    let second = host.start_instance("Changing", None, "").await;
    host.wait_for_status(&second, "Running").await;

    std::fs::remove_file(&deployed).unwrap();
    host.wait_for_log("removed").await;
    let reply = host.post("/orchestrators/Changing", "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // After a kill, the version comes back from the store.
    host.restart().await;
    host.raise(&id, "go", "\"later\"").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(
        (&done["output"], &done["customStatus"]),
        (&"later".into(), &"v1".into())
    );
    assert!(host.log().contains("from the store"), "{}", host.log());
    host.raise(&second, "go", "\"too\"").await;
    host.wait_for_status(&second, "Completed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_serving_a_name_keeps_it_when_broken_even_by_a_same_size_copy_with_its_old_time() {
    let components = components();
    let host = TestHost::start_with(&[&components.counter]).await;
    let serving = host.functions_dir().join("counter.wasm");
    // A second file with the same names, skipped while counter.wasm serves.
    std::fs::copy(
        &components.counter,
        host.functions_dir().join("a-copy.wasm"),
    )
    .unwrap();
    host.wait_for_log("a-copy.wasm: orchestrator 'E3_Counter' is also exported by")
        .await;

    // Garbage of the same size, with the old modification time put back
    // (as `cp -p` or `rsync -a` would): still a change, and the clashing
    // file, first in path order, must not take the name.
    let modified = std::fs::metadata(&serving).unwrap().modified().unwrap();
    let garbage = vec![b'x'; std::fs::metadata(&serving).unwrap().len() as usize];
    std::fs::write(&serving, garbage).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&serving)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    host.wait_for_log("still serving its previous version")
        .await;
    let listed = host.get("/functions").await.body;
    assert_eq!(listed[0]["name"], "E3_Counter");
    assert_eq!(listed[0]["file"], "counter.wasm", "{listed}");
    let id = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&id, "Running").await;
}
