//! Loading the functions folder: bad files are skipped with a reason.

use reqwest::StatusCode;

use crate::harness::{TestHost, components, version_of};

#[tokio::test(flavor = "multi_thread")]
async fn files_that_are_not_orchestrator_components_are_skipped_and_the_rest_load() {
    let components = components();
    let host = TestHost::prepare(&[&components.counter]);
    let functions = host.functions_dir();
    std::fs::write(functions.join("empty.wasm"), b"").unwrap();
    std::fs::write(functions.join("text.wasm"), b"not wasm at all").unwrap();
    let counter = std::fs::read(&components.counter).unwrap();
    std::fs::write(
        functions.join("truncated.wasm"),
        &counter[..counter.len() / 2],
    )
    .unwrap();
    // A core module, not a component.
    std::fs::write(functions.join("module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(functions.join("notes.txt"), b"ignored: not a .wasm file").unwrap();

    let mut host = host;
    host.restart().await;
    let log = host.log();
    for (file, reason) in [
        ("empty.wasm", "the file is empty"),
        ("text.wasm", "not a valid WebAssembly component"),
        ("truncated.wasm", "not a valid WebAssembly component"),
        ("module.wasm", "not a valid WebAssembly component"),
    ] {
        let line = log
            .lines()
            .find(|line| line.contains("skipped") && line.contains(file))
            .unwrap_or_else(|| panic!("no skip line for {file} in:\n{log}"));
        assert!(line.contains(reason), "{line}");
    }
    assert!(!log.contains("notes.txt"));

    let id = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&id, "Running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_exporting_a_name_another_file_serves_is_skipped_naming_both() {
    let components = components();
    let host = TestHost::prepare(&[&components.counter]);
    std::fs::copy(
        &components.counter,
        host.functions_dir().join("counter-copy.wasm"),
    )
    .unwrap();
    let host = host.started().await;
    // Files load in path order: "counter-copy.wasm" sorts first.
    let log = host.log();
    let line = log
        .lines()
        .find(|line| line.contains("skipped") && line.contains("counter.wasm"))
        .unwrap_or_else(|| panic!("no skip line in:\n{log}"));
    assert!(
        line.contains("orchestrator 'E3_Counter' is also exported by")
            && line.contains("counter-copy.wasm"),
        "{line}"
    );
    let id = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&id, "Running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_with_an_empty_functions_folder_serves_and_says_so() {
    let host = TestHost::start_with(&[]).await;
    let reply = host.post("/orchestrators/E3_Counter", "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(host.log().contains("no orchestrators loaded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_whose_orchestrator_is_gone_waits_can_be_terminated_and_runs_once_deployed() {
    let components = components();
    let mut host = TestHost::start_with(&[&components.changing_v1, &components.counter]).await;
    let id = host.start_instance("Changing", None, "").await;
    let other = host.start_instance("Changing", None, "").await;
    host.wait_for_status(&id, "Running").await;
    host.wait_for_status(&other, "Running").await;

    // An instance from before versions were recorded runs on whatever file
    // serves its orchestrator; here none does.
    host.kill();
    host.alter_database("UPDATE instances SET version = NULL");
    std::fs::remove_file(host.functions_dir().join("changing_v1.wasm")).unwrap();
    host.restart().await;
    // The event is accepted and kept: the orchestrator may be deployed again.
    assert_eq!(
        host.raise(&id, "go", "\"later\"").await.status,
        StatusCode::ACCEPTED
    );
    // The episode for the event is put off, not failed.
    host.wait_for_log_lines(&["orchestrator not loaded", &id], 1)
        .await;
    assert_eq!(host.status(&id).await.body["runtimeStatus"], "Running");

    let reply = host
        .post(&format!("/instances/{id}/terminate?reason=retired"), "")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let done = host.wait_for_status(&id, "Terminated").await;
    assert_eq!(done["output"], "retired");

    // Deploying the orchestrator again wakes the other, whose event waited.
    host.raise(&other, "go", "\"at last\"").await;
    host.wait_for_log_lines(&["orchestrator not loaded", &other], 1)
        .await;
    std::fs::copy(
        &components.changing_v1,
        host.functions_dir().join("changing_v1.wasm"),
    )
    .unwrap();
    let done = host.wait_for_status(&other, "Completed").await;
    assert_eq!(done["output"], "at last");
}

#[tokio::test(flavor = "multi_thread")]
async fn reprise_check_reports_exports_and_rejects_bad_files_before_deployment() {
    let components = components();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not wasm at all").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("check")
        .arg(&components.phone_verification)
        .arg(&text)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "a rejected file fails the check");
    assert!(
        report.contains("ok, a component of the functions (orchestrators and activities) world")
            && report.contains("orchestrators  E4_SmsPhoneVerification")
            && report.contains("activities     E4_SendSmsChallenge"),
        "{report}"
    );
    assert!(
        report.contains("notes.wasm: rejected: not a valid WebAssembly component"),
        "{report}"
    );
    assert_eq!(
        report
            .lines()
            .filter(|line| line.contains("notes.wasm"))
            .count(),
        1
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("check")
        .arg(&components.counter)
        .output()
        .unwrap();
    assert!(output.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn entities_are_loaded_and_listed_with_the_functions() {
    let components = components();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("check")
        .arg(&components.counter_entity)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success()
            && report.contains("a component of the functions world")
            && report.contains("orchestrators  AddAndGet")
            && report.contains("entities       Counter")
            && report.contains("contract       reprise:orchestration@0.2.0"),
        "{report}"
    );

    let host = TestHost::start_with(&[&components.counter_entity]).await;
    host.wait_for_log("counter_entity.wasm: AddAndGet, Counter (entity)")
        .await;
    let listed = host.get("/functions").await.body;
    let kinds: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|function| {
            let field = |name: &str| function[name].as_str().unwrap();
            (field("name"), field("kind"))
        })
        .collect();
    assert_eq!(
        kinds,
        [("AddAndGet", "orchestrator"), ("Counter", "entity")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loaded_functions_are_listed_with_their_versions_and_compiled_once() {
    let components = components();
    let host = TestHost::start_with(&[&components.counter, &components.hello_sequence]).await;
    let listed = host.get("/functions").await;
    assert_eq!(listed.status, StatusCode::OK);
    let version = version_of;
    assert_eq!(
        listed.body,
        serde_json::json!([
            { "name": "E3_Counter", "kind": "orchestrator", "file": "counter.wasm",
              "version": version(&components.counter), "contract": "0.2.0" },
            { "name": "E1_HelloSequence", "kind": "orchestrator", "file": "hello_sequence.wasm",
              "version": version(&components.hello_sequence), "contract": "0.2.0" },
            { "name": "E1_SayHello", "kind": "activity", "file": "hello_sequence.wasm",
              "version": version(&components.hello_sequence), "contract": "0.2.0" },
        ])
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
        .args(["--url", host.root_url(), "functions"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("E1_SayHello       activity      sha256:"),
        "{table}"
    );

    // Compiled code is kept beside the database for the next start.
    let cache = host.database().with_extension("compiled");
    let cached = walk_files(&cache);
    assert!(cached > 0, "nothing in {}", cache.display());
}

fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| {
                    let path = entry.path();
                    if path.is_dir() { walk_files(&path) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}
