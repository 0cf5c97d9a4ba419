//! Suspend and resume: while suspended, events and results queue up (and
//! survive a kill); a resume applies them in order; terminate still works.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{TestHost, event_types, on_sqlite};

/// How many events wait in `id`'s inbox.
fn queued_events(host: &TestHost, id: &str) -> usize {
    host.inbox(id)
        .iter()
        .filter(|message| message["type"] == "Event")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_counter_keeps_its_events_across_a_kill_and_applies_them_on_resume() {
    let mut host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", Some("paused"), "").await;
    host.wait_for_status(&id, "Running").await;

    let reply = host
        .post(&format!("/instances/{id}/suspend?reason=maintenance"), "")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    host.wait_for_status(&id, "Suspended").await;
    for _ in 0..3 {
        let reply = host.raise(&id, "operation", "\"incr\"").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "queued while suspended");
    }
    // A 202 is committed: the events wait in the inbox, held, not applied
    // (once the instance has looked at them).
    host.wait_for_log_lines(&[&id, "held until it is resumed"], 1)
        .await;
    assert_eq!(queued_events(&host, &id), 3, "{:?}", host.inbox(&id));
    let status = host.status(&id).await.body;
    assert_eq!(status["runtimeStatus"], "Suspended");
    assert_eq!(status["input"], json!(null), "nothing applied yet");

    // The restart schedules the instance again for its queued messages;
    // it keeps holding them.
    let held_before = host
        .log()
        .lines()
        .filter(|line| line.contains(&id) && line.contains("held until it is resumed"))
        .count();
    host.restart().await;
    if on_sqlite() {
        // On PostgreSQL, the poll takes it over once the killed run's
        // lease ends: no line at start-up.
        host.wait_for_log("resuming 1 instances with queued messages")
            .await;
    }
    host.wait_for_log_lines(&[&id, "held until it is resumed"], held_before + 1)
        .await;
    assert_eq!(
        host.status(&id).await.body["runtimeStatus"],
        "Suspended",
        "still suspended after a kill"
    );
    assert_eq!(queued_events(&host, &id), 3, "{:?}", host.inbox(&id));
    let reply = host
        .post(&format!("/instances/{id}/resume?reason=done"), "")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    host.wait_for(&id, Duration::from_secs(30), |body| {
        body["runtimeStatus"] == "Running" && body["input"] == 3
    })
    .await;

    let kinds = host.event_types(&id).await;
    assert!(
        !kinds.iter().any(|kind| kind == "ExecutionSuspended"),
        "continue-as-new started a fresh history: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_that_fires_while_suspended_is_applied_on_resume() {
    let host = TestHost::start().await;
    // Long enough for the suspension to land first, even on a slow machine.
    let id = host
        .start_instance("Approval", None, r#"{"timeoutSeconds": 3}"#)
        .await;
    host.wait_for_status(&id, "Running").await;
    host.post(&format!("/instances/{id}/suspend"), "").await;
    host.wait_for_status(&id, "Suspended").await;
    assert_eq!(
        host.pending_timers(&id).len(),
        1,
        "suspended before the timer fired"
    );
    // The timer fires: its message is queued, and held.
    host.wait_for_queued(&id, "TimerFired").await;
    let status = host.history(&id).await;
    assert_eq!(
        status["runtimeStatus"], "Suspended",
        "the fired timer waits"
    );
    let events = event_types(&status);
    assert!(
        !events.iter().any(|event| event == "TimerFired"),
        "{events:?}"
    );

    host.post(&format!("/instances/{id}/resume"), "").await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], "timed out");
    let events = host.event_types(&id).await;
    let position = |kind: &str| {
        events
            .iter()
            .position(|event| event == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
    };
    assert!(position("ExecutionSuspended") < position("ExecutionResumed"));
    assert!(position("ExecutionResumed") < position("TimerFired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn suspended_instances_can_be_terminated_and_finished_ones_not_suspended() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "").await;
    host.wait_for_status(&id, "Running").await;
    host.post(&format!("/instances/{id}/suspend"), "").await;
    host.wait_for_status(&id, "Suspended").await;
    host.raise(&id, "operation", "\"incr\"").await;

    let reply = host
        .post(&format!("/instances/{id}/terminate?reason=stop"), "")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let done = host.wait_for_status(&id, "Terminated").await;
    assert_eq!(done["output"], "stop");

    for action in ["suspend", "resume"] {
        let reply = host.post(&format!("/instances/{id}/{action}"), "").await;
        assert_eq!(reply.status, StatusCode::GONE, "{action}: {:?}", reply.body);
    }
    let reply = host.post("/instances/nobody/suspend", "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_finishes_before_a_queued_suspension_takes_effect_completes() {
    let components = crate::harness::components();
    let mut host = TestHost::start_with(&[&components.singleton_job]).await;
    let id = host.start_instance("SingletonJob", None, "").await;
    host.wait_for_status(&id, "Running").await;

    // With the component away, messages queue up unapplied: "stop", a
    // suspension, and an event behind it, all accepted. (Without a
    // recorded version, the instance runs only on the file it names.)
    let file = host.functions_dir().join("singleton_job.wasm");
    let kept = std::fs::read(&file).unwrap();
    host.kill();
    std::fs::remove_file(&file).unwrap();
    host.alter_database("UPDATE instances SET version = NULL");
    host.restart().await;
    assert_eq!(
        host.raise(&id, "command", "\"stop\"").await.status,
        StatusCode::ACCEPTED
    );
    let reply = host.post(&format!("/instances/{id}/suspend"), "").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        host.raise(&id, "command", "\"late\"").await.status,
        StatusCode::ACCEPTED
    );

    // One episode reads all three: "stop" completes the job first.
    std::fs::write(&file, kept).unwrap();
    host.restart().await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"]["processed"], 0, "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_flooding_a_suspended_instance_are_not_read_again_for_each_one() {
    let host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", Some("flooded"), "").await;
    host.wait_for_status(&id, "Running").await;
    host.post(&format!("/instances/{id}/suspend"), "").await;
    host.wait_for_status(&id, "Suspended").await;
    // More than an episode reads at once, so that every pass looking for a
    // resume reads them all.
    const EVENTS: u64 = 600;
    for _ in 0..EVENTS {
        let reply = host.raise(&id, "operation", "\"incr\"").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    // Each pass that finds only held messages logs so. Once one has, the
    // events after it wait without a pass: a few passes, not one per event.
    host.wait_for_log_lines(&[&id, "held until it is resumed"], 1)
        .await;
    let log = host.log();
    let passes: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&id) && line.contains("held until it is resumed"))
        .collect();
    assert!(
        passes.len() <= 10,
        "{} passes over the held events",
        passes.len()
    );
    // And a pass reads one episode's batch of them, not all 600, to know
    // that no resume waits beyond them.
    for pass in &passes {
        let pass = without_colours(pass);
        let count = pass.split("count=").nth(1).and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        });
        assert!(count.is_some_and(|count| count <= 256), "{pass}");
    }

    // A second suspension, a no-op behind the held events, then the
    // resume: read from beyond the events, both apply in their order, so
    // the instance ends up running, every event applied.
    for action in ["suspend", "resume"] {
        let reply = host.post(&format!("/instances/{id}/{action}"), "").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{action}");
    }
    host.wait_for(&id, Duration::from_secs(60), |body| {
        body["runtimeStatus"] == "Running" && body["input"] == EVENTS
    })
    .await;
}

/// `line` without its terminal colour codes.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // An escape sequence runs to its final letter, `m` for colours.
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}
