//! The OpenAPI document: served, identical to the checked-in copy, and true
//! to the API under a property-based run of schemathesis.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::TestHost;

/// Pinned, so a new release cannot change what this test means.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_is_the_checked_in_one() {
    let host = TestHost::start().await;
    let reply = host.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let checked_in: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reply.body, checked_in);
    assert_eq!(reply.body["openapi"], "3.1.0");
}

/// Installs schemathesis from PyPI into `target/api-check-venv` (once) and
/// returns its command.
fn schemathesis() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let venv = root.join("target").join("api-check-venv");
    let command = venv.join("bin").join("schemathesis");
    let installed = Command::new(&command)
        .arg("--version")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("4.32.5"));
    if !installed {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs (it installs schemathesis for this test)");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", SCHEMATHESIS])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install {SCHEMATHESIS} failed");
    }
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_property_based_run_finds_no_server_error_and_no_schema_violation() {
    let command = schemathesis();
    let host = TestHost::start().await;
    let output = tokio::task::spawn_blocking({
        let spec = format!("{}/openapi.json", host.base);
        let url = host.root_url().to_owned();
        move || {
            // Its caches go under target/, not into the source tree.
            let target = command
                .ancestors()
                .nth(3)
                .expect("target/api-check-venv/bin/x");
            Command::new(&command)
                .current_dir(target)
                .args(["run", &spec, "--url", &url])
                .args(["--checks", "not_a_server_error,response_schema_conformance"])
                .args(["--max-examples", "25", "--seed", "7"])
                .args(["--generation-database", "none"])
                // A slow CI machine is not a finding: only the checks count.
                .args(["--suppress-health-check", "all", "--request-timeout", "30"])
                .env("NO_COLOR", "1")
                .output()
                .expect("schemathesis runs")
        }
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}\nhost log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!host.log().contains("panicked"), "{}", host.log());
}
