//! `reprise new`: the crate it writes passes its own tests, builds to a
//! component, and that component runs on a live host.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::cli::reprise;
use crate::harness::{TestHost, components};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `cargo args...` in `folder`, offline: the guests the harness built have
/// put every crate the new project needs in Cargo's cache.
fn cargo(folder: &Path, args: &[&str], target_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO"))
        .current_dir(folder)
        .args(args)
        .arg("--offline")
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("cargo runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_project_tests_builds_and_runs_on_a_host() {
    // The harness installs the wasm target and fills Cargo's cache.
    components();
    let workspace = tempfile::tempdir().unwrap();
    let project = workspace.path().join("greeter-app");
    let sdk = repository().join("guest-sdk");
    let created = reprise(
        &[],
        &[
            "new",
            project.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
    );
    assert!(created.success, "{}", created.stderr);
    assert!(created.stdout.starts_with("created "), "{}", created.stdout);
    for file in [
        "Cargo.toml",
        "rust-toolchain.toml",
        "src/lib.rs",
        "README.md",
        ".gitignore",
    ] {
        assert!(project.join(file).is_file(), "{file} was not written");
    }
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        readme.contains("target/wasm32-wasip2/release/greeter_app.wasm"),
        "{readme}"
    );

    // Its tests pass natively, with the SDK's test kit.
    let target = repository().join("target");
    let tested = cargo(&project, &["test"], &target.join("scaffold-native"));
    let output = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success(),
        "{output}{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(output.contains("test result: ok"), "{output}");

    // It builds to a component that a host serves.
    let wasm_target = target.join("wasm");
    let built = cargo(
        &project,
        &["build", "--release", "--target", "wasm32-wasip2"],
        &wasm_target,
    );
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = wasm_target.join("wasm32-wasip2/release/greeter_app.wasm");
    let host = TestHost::start_with(&[&wasm]).await;
    let id = host
        .start_instance("Greetings", None, r#"["Tokyo", "Seattle"]"#)
        .await;
    host.wait_for(&id, Duration::from_secs(60), |body| {
        body["customStatus"] == "waiting for approval"
    })
    .await;
    host.raise(&id, "approval", "true").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], json!(["Hello Tokyo!", "Hello Seattle!"]));
}

#[test]
fn new_refuses_a_folder_in_use_and_a_name_cargo_would_not_take() {
    let workspace = tempfile::tempdir().unwrap();
    let used = workspace.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("notes.txt"), "mine").unwrap();
    let run = reprise(&[], &["new", used.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("already exists and is not empty"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(used.join("notes.txt")).unwrap(),
        "mine"
    );

    let bad = workspace.path().join("1st app");
    let run = reprise(&[], &["new", bad.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("cannot be a crate name"),
        "{}",
        run.stderr
    );
    assert!(!bad.exists());

    let run = reprise(
        &[],
        &[
            "new",
            workspace.path().join("app").to_str().unwrap(),
            "--sdk-path",
            "/nonexistent",
        ],
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("--sdk-path /nonexistent"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_samples_pass_their_own_tests_written_with_the_test_kit() {
    let tested = cargo(
        &repository().join("samples"),
        &["test"],
        &repository().join("target").join("samples-native"),
    );
    assert!(
        tested.status.success(),
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
}
