//! `reprise replay`: recorded histories from a live host (or saved with
//! `reprise status --history --json`) replayed on a new build, before it is
//! deployed. `Changing` v1 and v2 differ in the custom status they set
//! before waiting, so v2 cannot replay a v1 `Changing` history;
//! `ChangingWithActivity` took no action yet, so it replays on both.

use serde_json::Value;

use crate::cli::{Run, cli, ok};
use crate::harness::{TestHost, components};

fn path(file: &std::path::Path) -> &str {
    file.to_str().unwrap()
}

fn line_of<'a>(run: &'a Run, id: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|line| line.starts_with(&format!("{id} (")))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{}", run.stdout))
}

/// A host on v1 with one instance of each orchestrator waiting for "go".
async fn host_with_instances_in_flight() -> TestHost {
    let host = TestHost::start_with(&[&components().changing_v1]).await;
    host.start_instance("Changing", Some("replay-status"), "null")
        .await;
    host.start_instance("ChangingWithActivity", Some("replay-activity"), "null")
        .await;
    let deadline = std::time::Duration::from_secs(60);
    host.wait_for("replay-status", deadline, |body| {
        body["customStatus"] == "v1"
    })
    .await;
    host.wait_for("replay-activity", deadline, |body| {
        body["runtimeStatus"] == "Running"
    })
    .await;
    host
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_that_changes_recorded_actions_is_caught_before_it_is_deployed() {
    let host = host_with_instances_in_flight().await;
    let c = components();

    let same = cli(&host, &["replay", "--wasm", path(&c.changing_v1)]);
    assert_eq!(same.code, Some(0), "{}{}", same.stdout, same.stderr);
    assert!(line_of(&same, "replay-status").ends_with("replays (1 episode(s))"));
    assert!(line_of(&same, "replay-activity").contains("replays"));
    assert!(
        same.stdout.ends_with("2 replay, 0 would break\n"),
        "{}",
        same.stdout
    );

    let changed = cli(&host, &["replay", "--wasm", path(&c.changing_v2)]);
    assert_eq!(
        changed.code,
        Some(1),
        "{}{}",
        changed.stdout,
        changed.stderr
    );
    let broken = line_of(&changed, "replay-status");
    assert!(
        broken.starts_with("replay-status (Changing, Running): BREAKS: non-determinism"),
        "{broken}"
    );
    // The recorded action and the new one, side by side.
    assert!(
        broken.contains("\"v1\"") && broken.contains("\"v2\""),
        "{broken}"
    );
    assert!(line_of(&changed, "replay-activity").contains("replays"));
    assert!(changed.stdout.ends_with("1 replay, 1 would break\n"));

    // Narrowed to one orchestrator or one instance; nothing on the host changed.
    let one_name = cli(
        &host,
        &[
            "replay",
            "--wasm",
            path(&c.changing_v2),
            "--name",
            "ChangingWithActivity",
        ],
    );
    assert_eq!(one_name.code, Some(0), "{}", one_name.stdout);
    assert!(!one_name.stdout.contains("replay-status"));
    let one = cli(
        &host,
        &[
            "replay",
            "--wasm",
            path(&c.changing_v2),
            "--instance",
            "replay-status",
            "--json",
        ],
    );
    assert_eq!(one.code, Some(1));
    let rows: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["instanceId"], "replay-status");
    assert_eq!(rows[0]["replays"], false);
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("non-determinism")
    );
    let status = host.status("replay-status").await;
    assert_eq!(status.body["runtimeStatus"], "Running");
    assert_eq!(status.body["customStatus"], "v1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_history_replays_without_a_host() {
    let host = host_with_instances_in_flight().await;
    let c = components();
    let saved = tempfile::tempdir().unwrap();
    let file = saved.path().join("replay-status.json");
    std::fs::write(
        &file,
        ok(&host, &["status", "replay-status", "--history", "--json"]),
    )
    .unwrap();
    drop(host);

    // No host to ask: `--url` points nowhere and is not used.
    let offline = ["--url", "http://127.0.0.1:9"];
    let on_v1 = crate::cli::reprise(
        &offline,
        &[
            "replay",
            "--history",
            path(&file),
            "--wasm",
            path(&c.changing_v1),
        ],
    );
    assert_eq!(on_v1.code, Some(0), "{}{}", on_v1.stdout, on_v1.stderr);
    assert!(line_of(&on_v1, "replay-status").contains("replays"));
    let on_v2 = crate::cli::reprise(
        &offline,
        &[
            "replay",
            "--history",
            path(&file),
            "--wasm",
            path(&c.changing_v2),
        ],
    );
    assert_eq!(on_v2.code, Some(1), "{}{}", on_v2.stdout, on_v2.stderr);
    assert!(line_of(&on_v2, "replay-status").contains("BREAKS: non-determinism"));
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_be_checked_says_why_and_exits_with_2() {
    let folder = tempfile::tempdir().unwrap();
    let garbage = folder.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not a component").unwrap();
    let run = crate::cli::reprise(
        &[],
        &[
            "replay",
            "--wasm",
            path(&garbage),
            "--history",
            path(&garbage),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("cannot be loaded"), "{}", run.stderr);

    let not_saved = folder.path().join("status.json");
    std::fs::write(&not_saved, r#"{"name":"Changing","instanceId":"x"}"#).unwrap();
    let run = crate::cli::reprise(
        &[],
        &[
            "replay",
            "--wasm",
            path(&components().changing_v1),
            "--history",
            path(&not_saved),
        ],
    );
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no `replayHistory`"), "{}", run.stderr);
}
