//! Faults of the host's side, not the guest's: a message the host cannot
//! process (set aside after bounded retries, its instance failed, the rest
//! going on), a database whose disk fills up, and a PostgreSQL server
//! that crashes and comes back (503 saying so, nothing half-written, the
//! host resuming by itself once the database is back).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use reprise_testing_postgres::PostgresServer;

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

/// What became of one event sent while the database comes and goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// 202: it must be applied, once.
    Accepted,
    /// 503: it must not be.
    Refused,
    /// 500 saying the commit's outcome is unknown: at most once.
    Unknown,
}

/// The events sent to one instance, in order, and what became of each.
type Sent = Vec<(Value, Fate)>;

/// Sends event `n` to `id` and says what became of it; any other answer
/// (a bare 500 above all) fails the test.
async fn send_item(host: &TestHost, id: &str, n: usize) -> (Value, Fate) {
    let payload = json!(format!("{n:05}"));
    let reply = host.raise(id, "item", &payload.to_string()).await;
    let fate = match reply.status {
        StatusCode::ACCEPTED => Fate::Accepted,
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
            Fate::Refused
        }
        StatusCode::INTERNAL_SERVER_ERROR if reply.message().contains("may or may not") => {
            Fate::Unknown
        }
        other => panic!("{other}: {reply:?}\n{}", host.log()),
    };
    (payload, fate)
}

/// PostgreSQL crashes under streams of events (an immediate shutdown:
/// every connection cut, new ones refused, commits in flight lost or not)
/// and comes back. Meanwhile requests answer 503 (or, for a commit the
/// crash cut off, a 500 that says its outcome is unknown), never a bare
/// 500; the host keeps running, and once the server is back it resumes by
/// itself: every 202'd event is applied exactly once and in order, no
/// refused one is, a cut-off one at most once.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_crash_answers_503_and_the_host_resumes_once_it_is_back() {
    const LOGS: usize = 4;
    // The test's own server, since it crashes it.
    if on_sqlite() {
        return;
    }
    let mut server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .expect("can start a PostgreSQL server");
    let url = server.create_database().unwrap();
    let c = components();
    let host = TestHost::prepare(&[&c.event_log])
        .with_database_url(&url)
        .started()
        .await;
    let host = Arc::new(host);
    let logs: Vec<String> = (0..LOGS).map(|n| format!("log{n}")).collect();
    for id in &logs {
        host.start_instance("EventLog", Some(id), "").await;
        host.wait_for_status(id, "Running").await;
    }

    // One sender per log, each an event at a time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(vec![Vec::new(); LOGS]));
    let senders: Vec<_> = (0..LOGS)
        .map(|index| {
            let (host, stop, sent) = (Arc::clone(&host), Arc::clone(&stop), Arc::clone(&sent));
            let id = logs[index].clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let outcome = send_item(&host, &id, n).await;
                    sent.lock().unwrap()[index].push(outcome);
                    n += 1;
                }
            })
        })
        .collect();
    let tally = |wanted: Fate| {
        let sent = sent.lock().unwrap();
        sent.iter()
            .flatten()
            .filter(|(_, fate)| *fate == wanted)
            .count()
    };
    let wait_for = async |what: &str, done: &dyn Fn() -> bool| {
        host.wait_until(what, Duration::from_secs(60), async || {
            if done() { Ok(()) } else { Err(String::new()) }
        })
        .await;
    };

    wait_for("events accepted", &|| tally(Fate::Accepted) >= 50).await;
    let mut server = tokio::task::spawn_blocking(move || {
        server.crash();
        server
    })
    .await
    .unwrap();
    // Down: refused, and soon (the host notices the cut connections).
    wait_for("events refused", &|| tally(Fate::Refused) >= 20).await;
    let accepted_before = tally(Fate::Accepted);
    let _server = tokio::task::spawn_blocking(move || {
        server.restart().expect("can restart the server");
        server
    })
    .await
    .unwrap();
    // Back by itself: no restart of the host.
    wait_for("events accepted again", &|| {
        tally(Fate::Accepted) >= accepted_before + 50
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.expect("a sender panicked");
    }

    let sent = sent.lock().unwrap().clone();
    eprintln!(
        "{} events accepted, {} refused, {} of unknown outcome",
        tally(Fate::Accepted),
        tally(Fate::Refused),
        tally(Fate::Unknown),
    );
    for (id, sent) in logs.iter().zip(&sent) {
        let end = host.raise(id, "item", "\"end\"").await;
        assert_eq!(end.status, StatusCode::ACCEPTED, "{end:?}");
        let done = host
            .wait_for(id, Duration::from_secs(120), |body| {
                body["runtimeStatus"] != "Running"
            })
            .await;
        assert_eq!(done["runtimeStatus"], "Completed", "{}", host.log());
        let applied = done["output"].as_array().unwrap();
        let fate_of = |payload: &Value| sent.iter().find(|(sent, _)| sent == payload).map(|s| s.1);
        assert!(
            applied
                .windows(2)
                .all(|pair| pair[0].as_str() < pair[1].as_str()),
            "{id}: in the order sent, none twice: {applied:?}"
        );
        for payload in applied {
            assert!(
                matches!(fate_of(payload), Some(Fate::Accepted | Fate::Unknown)),
                "{id}: {payload} was applied but not accepted: {sent:?}"
            );
        }
        for (payload, fate) in sent {
            if *fate == Fate::Accepted {
                assert!(
                    applied.contains(payload),
                    "{id}: {payload} accepted, never applied"
                );
            }
        }
    }
}

/// A commit whose outcome is unknown (its connection lost during `COMMIT`;
/// injected here, which debug builds alone allow) may have leased the
/// activities it scheduled to this host, where no worker runs them. The
/// host releases them as soon as the database answers, so they run now,
/// not when their lease ends (the activity timeout and a margin: minutes).
/// Here the lost commit is a start's, whose first episode leases the
/// first activity.
#[tokio::test(flavor = "multi_thread")]
async fn activities_a_lost_commit_leased_run_at_once_rather_than_when_the_lease_ends() {
    // Only a networked database loses a commit's answer.
    if on_sqlite() {
        return;
    }
    let mut host = TestHost::prepare(&[&components().hello_sequence]).on_postgres();
    host.set_env("REPRISE_TEST_LOSE_COMMIT_OF", "start:lost-");
    let host = host.started().await;
    released_after_a_lost_commit(&host, "lost-", |reply| {
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{reply:?}");
        assert!(
            reply.message().contains("may or may not have taken effect"),
            "{reply:?}"
        );
    })
    .await;
}

/// The same for an episode a worker commits (no warm executions: each
/// activity's result is queued and applied by a worker's episode, which
/// leases the next activity).
#[tokio::test(flavor = "multi_thread")]
async fn activities_a_lost_episode_commit_leased_run_at_once_too() {
    if on_sqlite() {
        return;
    }
    let mut host = TestHost::prepare(&[&components().hello_sequence])
        .on_postgres()
        .with_args(&["--warm-executions", "0"]);
    host.set_env("REPRISE_TEST_LOSE_COMMIT_OF", "episode:lost-");
    let host = host.started().await;
    released_after_a_lost_commit(&host, "lost-", |reply| {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    })
    .await;
}

/// Starts `E1_HelloSequence` under `prefix`N, whose commit the host was
/// told to lose (`started` checks the start's answer), until the host says
/// it released a lost commit's leases: a commit leases an activity only if
/// a worker is free, and none is while the dispatcher looks for work (then
/// the activity is queued, which proves nothing). Each run must complete
/// well before any lease (300 s and 30 s) ends.
async fn released_after_a_lost_commit(
    host: &TestHost,
    prefix: &str,
    started: impl Fn(&crate::harness::Reply),
) {
    const RELEASED: &str = "released the activity leases of a commit whose outcome was unknown";
    for attempt in 0..5 {
        let id = format!("{prefix}{attempt}");
        let reply = host
            .post(&format!("/orchestrators/E1_HelloSequence/{id}"), "")
            .await;
        started(&reply);
        let done = host.wait_for_status(&id, "Completed").await;
        assert_eq!(
            done["output"],
            json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
        );
        if host.log().contains(RELEASED) {
            return;
        }
    }
    panic!("no lost commit leased an activity: {}", host.log());
}
