//! `--log-format json`: one JSON object per line, and an episode's lines
//! carry its instance, orchestrator, version and generation.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{TestHost, components};

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_fields_of_the_episode() {
    let mut host =
        TestHost::prepare(&[&components().hello_sequence]).with_args(&["--log-format", "json"]);
    host.set_env("REPRISE_LOG", "info,reprise_host::engine::episode=debug");
    let host = host.started().await;
    host.start_instance("E1_HelloSequence", Some("logged"), "")
        .await;
    host.wait_for("logged", Duration::from_secs(30), |status| {
        status["runtimeStatus"] == "Completed"
    })
    .await;

    let log = host.log();
    let lines = json_lines(&log);
    assert!(
        lines
            .iter()
            .all(|line| line["level"].is_string() && line["timestamp"].is_string())
    );
    let planned: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "episode planned")
        .collect();
    // The start, then one episode per activity result (three).
    assert!(planned.len() >= 4, "{log}");
    for line in planned {
        let episode = &line["span"];
        assert_eq!(episode["instance"], "logged", "{line}");
        assert_eq!(episode["orchestrator"], "E1_HelloSequence", "{line}");
        assert_eq!(episode["generation"], 0, "{line}");
        assert!(
            episode["version"].as_str().unwrap().starts_with("sha256:"),
            "{line}"
        );
    }
}

/// A host that cannot start says why in the format asked for: with JSON
/// logs, that line is a JSON object too. (Command-line mistakes are still
/// told as text, by the argument parser, before any logging.)
#[test]
fn with_json_logs_a_failed_start_is_a_json_line_too() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reprise"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("REPRISE_DB", "postgres://postgres@127.0.0.1:1/reprise")
        .env_remove("REPRISE_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    let lines = json_lines(&log);
    let failed = lines
        .iter()
        .find(|line| line["message"] == "cannot serve")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(failed["level"], "ERROR", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect to PostgreSQL"),
        "{failed}"
    );
}

/// Each line of `log` as a JSON object; panics at a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON object ({error}): {line}"))
        })
        .collect()
}
