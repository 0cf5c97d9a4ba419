//! Faults of the host's side, not the guest's: a message the host cannot
//! process (set aside after bounded retries, its instance failed, the rest
//! going on), and a database whose disk fills up (503 saying so, nothing
//! half-written, the host resuming by itself once space is back).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestHost, components, on_sqlite};

/// A queued message this host cannot read (written by hand into the
/// database, as a bug or a bad migration would) is retried a bounded number
/// of times with backoff, then set aside: its instance fails with a reason
/// that says so, and every other instance carries on meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_the_host_cannot_process_is_set_aside_and_its_instance_failed() {
    let c = components();
    let mut host = TestHost::start_with(&[&c.counter]).await;
    host.start_instance("E3_Counter", Some("poisoned"), "0")
        .await;
    host.start_instance("E3_Counter", Some("healthy"), "0")
        .await;
    host.wait_for_status("poisoned", "Running").await;
    host.wait_for_status("healthy", "Running").await;
    host.kill();
    host.alter_database(
        "INSERT INTO inbox (instance_id, message) VALUES ('poisoned', '{\"type\":\"Gibberish\"}')",
    );
    host.restart().await;

    // The healthy counter is served while the poisoned one is retried.
    host.raise("healthy", "operation", "\"incr\"").await;
    host.wait_for("healthy", Duration::from_secs(60), |body| {
        body["input"] == 1
    })
    .await;
    let failed = host
        .wait_for("poisoned", Duration::from_secs(120), |body| {
            body["runtimeStatus"] == "Failed"
        })
        .await;
    let reason = failed["output"].as_str().unwrap();
    assert!(
        reason.contains("failed 6 times in a row") && reason.contains("set them aside"),
        "{reason}"
    );
    assert!(
        reason.contains("Gibberish"),
        "names what it could not read: {reason}"
    );
    let retries = host.log().matches("episode failed, retrying").count();
    assert_eq!(retries, 5, "{}", host.log());
    assert!(
        host.inbox("poisoned").is_empty(),
        "its messages are set aside"
    );
    let status = host.history("poisoned").await;
    let last = status["historyEvents"].as_array().unwrap().last().unwrap();
    assert_eq!(last["OrchestrationStatus"], "Failed", "{last}");
    // Finished: later events are refused, not queued behind the poison.
    let refused = host.raise("poisoned", "operation", "\"incr\"").await;
    assert_eq!(refused.status, StatusCode::GONE);
    host.raise("healthy", "operation", "\"incr\"").await;
    host.wait_for("healthy", Duration::from_secs(60), |body| {
        body["input"] == 2
    })
    .await;
}

/// A tmpfs of a few MiB, mounted for one test and unmounted after.
struct SmallFileSystem {
    dir: tempfile::TempDir,
}

impl SmallFileSystem {
    /// `None` where this process may not mount (not root): the test says
    /// so and skips. As root (as CI runs), failing to mount fails the test.
    fn mount(size: &str) -> Option<SmallFileSystem> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(status) if status.success() => Some(SmallFileSystem { dir }),
            _ if !is_root() => {
                eprintln!("skipped: mounting a small file system needs root");
                None
            }
            other => panic!("cannot mount a tmpfs as root: {other:?}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            if let Err(error) = file.write_all(&block).and_then(|()| file.sync_all()) {
                assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
                break;
            }
        }
        // Whatever part of a block still fits.
        while file.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// The disk under the database fills up during a burst of events: requests
/// that cannot be written answer 503 saying the disk is full (never 500),
/// nothing of them is applied, the host keeps running; once space is back
/// it resumes by itself, and exactly the events it accepted are applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_and_the_host_resumes_once_space_is_back() {
    // The SQLite file's disk; PostgreSQL's is the server's.
    if !on_sqlite() {
        return;
    }
    let Some(disk) = SmallFileSystem::mount("16m") else {
        return;
    };
    let c = components();
    let host = TestHost::prepare(&[&c.event_log])
        .with_database_in(disk.path())
        .started()
        .await;
    host.start_instance("EventLog", Some("log"), "").await;
    host.wait_for_status("log", "Running").await;

    let filler = disk.fill();
    let mut accepted = Vec::new();
    let mut refused = None;
    for n in 0..5_000 {
        let payload = json!(format!("{n:05}-{}", "x".repeat(2000)));
        let reply = host.raise("log", "item", &payload.to_string()).await;
        match reply.status {
            StatusCode::ACCEPTED => accepted.push(payload),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some(reply);
                break;
            }
            other => panic!("{other}: {reply:?}\n{}", host.log()),
        }
    }
    let refused = refused.expect("the disk filled up within 5,000 events");
    assert!(refused.message().contains("disk is full"), "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));

    std::fs::remove_file(filler).unwrap();
    // Resumes by itself: no restart, the next events are accepted.
    let resumed = json!("after");
    host.wait_until(
        "events accepted again",
        Duration::from_secs(60),
        async || {
            let reply = host.raise("log", "item", &resumed.to_string()).await;
            match reply.status {
                StatusCode::ACCEPTED => Ok(()),
                StatusCode::SERVICE_UNAVAILABLE => Err(format!("{reply:?}")),
                other => panic!("{other}: {reply:?}"),
            }
        },
    )
    .await;
    accepted.push(resumed);
    host.raise("log", "item", "\"end\"").await;
    let done = host
        .wait_for("log", Duration::from_secs(120), |body| {
            body["runtimeStatus"] != "Running"
        })
        .await;
    assert_eq!(done["runtimeStatus"], "Completed", "{}", host.log());
    let applied: &Vec<Value> = done["output"].as_array().unwrap();
    assert_eq!(applied.len(), accepted.len(), "each accepted event once");
    assert!(*applied == accepted, "in order, none of the refused ones");
}

/// If the database writer dies (a bug; injected here, which debug builds
/// alone allow), the host does not answer 500 forever: it exits with a
/// clear line, and once restarted (as a supervisor would) it applies every
/// event it had accepted, exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_whose_database_writer_dies_exits_and_recovers_on_restart() {
    // The writer thread is SQLite's.
    if !on_sqlite() {
        return;
    }
    let mut host = TestHost::prepare(&[&components().event_log]);
    host.set_env("REPRISE_TEST_WRITER_PANICS_AFTER", "40");
    let mut host = host.started().await;
    host.start_instance("EventLog", Some("log"), "").await;
    let mut accepted = Vec::new();
    for n in 0..1_000 {
        let payload = json!(n);
        let path = "/instances/log/raiseEvent/item";
        match host.try_post(path, &payload.to_string()).await {
            Ok(reply) if reply.status == StatusCode::ACCEPTED => accepted.push(payload),
            _ => break,
        }
    }
    assert!(!accepted.is_empty() && accepted.len() < 1_000);
    let code = host.wait_for_exit(Duration::from_secs(30)).await;
    assert_eq!(code, Some(70), "{}", host.log());
    assert!(
        host.log().contains("the database writer died"),
        "{}",
        host.log()
    );

    host.unset_env("REPRISE_TEST_WRITER_PANICS_AFTER");
    host.restart().await;
    host.raise("log", "item", "\"end\"").await;
    let done = host.wait_for_status("log", "Completed").await;
    assert_eq!(done["output"], json!(accepted));
}
