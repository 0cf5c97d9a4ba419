//! The management subcommands of `reprise`, run as a user runs them against
//! a live host: tables by default, `--json` for scripts, one-line errors.

use std::process::Command;

use serde_json::Value;

use crate::harness::{TestHost, components};

/// What a `reprise` command printed, and how it exited.
pub struct Run {
    pub success: bool,
    /// The exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `reprise --url HOST args...`.
pub fn cli(host: &TestHost, args: &[&str]) -> Run {
    reprise(&["--url", host.root_url()], args)
}

/// `reprise args...`, with `common` flags first.
pub fn reprise(common: &[&str], args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .args(common)
        .args(args)
        .env_remove("REPRISE_KEY")
        .output()
        .expect("the reprise binary runs");
    Run {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn ok(host: &TestHost, args: &[&str]) -> String {
    let run = cli(host, args);
    assert!(run.success, "reprise {args:?} failed: {}", run.stderr);
    run.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn start_raise_status_and_list() {
    let host = TestHost::start().await;
    let out = ok(
        &host,
        &["start", "E3_Counter", "--id", "cli-counter", "--input", "5"],
    );
    assert_eq!(out, "started cli-counter\n");
    let out = ok(&host, &["raise", "cli-counter", "operation", "\"incr\""]);
    assert_eq!(out, "raised operation on cli-counter\n");
    host.wait_for("cli-counter", std::time::Duration::from_secs(30), |body| {
        body["input"] == 6
    })
    .await;

    let table = ok(&host, &["status", "cli-counter"]);
    assert!(table.contains("runtimeStatus    Running"), "{table}");
    assert!(table.contains("input            6"), "{table}");
    assert!(table.contains("componentVersion sha256:"), "{table}");
    let json: Value = serde_json::from_str(&ok(
        &host,
        &["status", "cli-counter", "--history", "--json"],
    ))
    .unwrap();
    assert_eq!(json["instanceId"], "cli-counter");
    assert!(json["historyEvents"].is_array(), "{json}");

    ok(&host, &["start", "E1_HelloSequence", "--id", "cli-hello"]);
    host.wait_for_status("cli-hello", "Completed").await;
    let table = ok(&host, &["list", "--prefix", "cli-"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("INSTANCE ID"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1].starts_with("cli-counter  E3_Counter"), "{table}");
    let running: Value =
        serde_json::from_str(&ok(&host, &["list", "--status", "Running", "--json"])).unwrap();
    assert_eq!(running.as_array().unwrap().len(), 1, "{running}");
    let first: Value = serde_json::from_str(&ok(&host, &["list", "--top", "1", "--json"])).unwrap();
    assert_eq!(first.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_resume_terminate_restart_and_purge() {
    let host = TestHost::start().await;
    ok(&host, &["start", "E3_Counter", "--id", "life"]);
    host.wait_for_status("life", "Running").await;

    assert_eq!(
        ok(&host, &["suspend", "life", "--reason", "pause"]),
        "suspending life (accepted)\n"
    );
    host.wait_for_status("life", "Suspended").await;
    assert_eq!(ok(&host, &["resume", "life"]), "resuming life (accepted)\n");
    host.wait_for_status("life", "Running").await;
    assert_eq!(
        ok(&host, &["terminate", "life", "--reason", "bye"]),
        "terminating life (accepted)\n"
    );
    assert_eq!(
        host.wait_for_status("life", "Terminated").await["output"],
        "bye"
    );

    let out = ok(&host, &["restart", "life"]);
    let fresh = out
        .strip_prefix("restarted life as ")
        .unwrap_or_else(|| panic!("{out}"))
        .trim();
    assert_ne!(fresh, "life");
    host.wait_for_status(fresh, "Running").await;
    assert_eq!(
        ok(&host, &["restart", "life", "--same-id"]),
        "restarted life as life\n"
    );
    host.wait_for_status("life", "Running").await;

    ok(&host, &["terminate", "life"]);
    host.wait_for_status("life", "Terminated").await;
    assert_eq!(ok(&host, &["purge", "life"]), "purged life\n");
    ok(&host, &["terminate", fresh]);
    host.wait_for_status(fresh, "Terminated").await;
    assert_eq!(
        ok(&host, &["purge", "--from", "2000-01-01T00:00:00Z"]),
        "purged 1 instances\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rewind_and_one_line_errors_with_a_nonzero_exit() {
    let host = TestHost::start_with(&[&components().http_fetch]).await;
    // Not an allowed host: the activity fails, and so does the instance.
    ok(
        &host,
        &[
            "start",
            "FetchStatus",
            "--id",
            "denied",
            "--input",
            "\"http://127.0.0.1:9/\"",
        ],
    );
    host.wait_for_status("denied", "Failed").await;
    assert_eq!(
        ok(&host, &["rewind", "denied", "--reason", "retry"]),
        "rewinding denied (accepted)\n"
    );
    // The rewound instance runs the activity again, which is denied again.
    let failed_again = host
        .wait_for("denied", std::time::Duration::from_secs(30), |body| {
            body["runtimeStatus"] == "Failed"
        })
        .await;
    assert!(
        failed_again["output"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied")
    );
    let history = host.get("/instances/denied?showHistory=true").await.body;
    assert!(
        history.to_string().contains("ExecutionRewound"),
        "{history}"
    );

    let run = cli(&host, &["status", "nobody"]);
    assert!(!run.success);
    assert_eq!(
        run.stderr,
        "error: 404 Not Found: no instance with ID 'nobody'\n"
    );
    assert!(run.stdout.is_empty());

    let run = cli(&host, &["purge"]);
    assert!(!run.success, "purge needs an ID or --from");

    let unreachable = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .args(["--url", "http://127.0.0.1:9", "list"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.starts_with("error: cannot reach the host at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_sent_when_given() {
    let host = TestHost::prepare(&[&components().counter])
        .with_args(&["--key", "k3y"])
        .started()
        .await;
    let run = cli(&host, &["list"]);
    assert!(!run.success);
    assert!(
        run.stderr.starts_with("error: 401 Unauthorized: "),
        "{}",
        run.stderr
    );
    let out = ok(
        &host,
        &["--key", "k3y", "start", "E3_Counter", "--id", "keyed"],
    );
    assert_eq!(out, "started keyed\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn entity_signal_get_and_list() {
    let host = TestHost::start_with(&[&components().counter_entity]).await;
    let out = ok(&host, &["entity", "signal", "Counter", "cli", "add", "4"]);
    assert_eq!(out, "signalled add to @counter@cli (accepted)\n");
    ok(&host, &["entity", "signal", "counter", "cli", "incr"]);
    let state = host
        .wait_until(
            "the counter at 5",
            std::time::Duration::from_secs(30),
            async || {
                let run = cli(&host, &["entity", "get", "Counter", "cli"]);
                match run.stdout.as_str() {
                    "5\n" => Ok(run.stdout),
                    _ => Err(format!("{} {}", run.stdout, run.stderr)),
                }
            },
        )
        .await;
    assert_eq!(state, "5\n");
    let table = ok(&host, &["entity", "list", "Counter"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(
        lines[1].starts_with("counter  cli") && lines[1].ends_with('5'),
        "{table}"
    );
    let missing = cli(&host, &["entity", "get", "Counter", "nobody"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("404 Not Found: entity @counter@nobody has no state"),
        "{}",
        missing.stderr
    );
    let unknown = cli(&host, &["entity", "signal", "Nope", "x", "add"]);
    assert!(
        unknown.stderr.contains("no entity named 'nope'"),
        "{}",
        unknown.stderr
    );
}
