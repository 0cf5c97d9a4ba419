//! A 202 is durable: SIGKILL the host at any moment, restart it on the same
//! database, and every accepted request is applied exactly once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::TestHost;

#[tokio::test(flavor = "multi_thread")]
async fn events_accepted_before_a_kill_are_applied_exactly_once() {
    let mut host = TestHost::start().await;
    let id = host.start_instance("EventLog", None, "").await;
    host.wait_for_status(&id, "Running").await;

    // A burst of uniquely numbered events, 16 in flight; SIGKILL once 300
    // were accepted, while the rest are still arriving.
    let accepted_count = AtomicUsize::new(0);
    let burst = futures::stream::iter(0..2000u64)
        .map(|n| {
            let (host, id, accepted_count) = (&host, &id, &accepted_count);
            async move {
                let reply = host
                    .try_post(&format!("/instances/{id}/raiseEvent/item"), &n.to_string())
                    .await
                    .map(|reply| reply.status);
                if matches!(reply, Ok(StatusCode::ACCEPTED)) {
                    accepted_count.fetch_add(1, Ordering::Relaxed);
                }
                (n, reply)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while accepted_count.load(Ordering::Relaxed) < 300 {
            assert!(
                Instant::now() < deadline,
                "300 events were never accepted; host log:\n{}",
                host.log()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        host.kill_now();
    };
    let (outcomes, ()) = tokio::join!(burst, kill);

    let mut accepted = HashSet::new();
    let mut unanswered = HashSet::new();
    for (n, reply) in outcomes {
        match reply {
            Ok(StatusCode::ACCEPTED) => accepted.insert(n),
            Ok(status) => panic!("event {n} got {status}"),
            // Cut off by the kill: it may or may not have been committed.
            Err(_) => unanswered.insert(n),
        };
    }
    assert!(
        accepted.len() >= 300 && !unanswered.is_empty(),
        "the kill must land mid-burst"
    );

    host.restart().await;
    assert_eq!(
        host.raise(&id, "item", "\"end\"").await.status,
        StatusCode::ACCEPTED
    );
    let done = host
        .wait_for(&id, Duration::from_secs(120), |body| {
            body["runtimeStatus"] == "Completed"
        })
        .await;
    let applied: Vec<u64> = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_u64().unwrap())
        .collect();
    let applied_set: HashSet<u64> = applied.iter().copied().collect();
    assert_eq!(
        applied_set.len(),
        applied.len(),
        "an event was applied twice"
    );
    let lost: Vec<&u64> = accepted.difference(&applied_set).collect();
    assert!(
        lost.is_empty(),
        "accepted (202) but never applied: {lost:?}"
    );
    assert!(
        applied_set
            .iter()
            .all(|n| accepted.contains(n) || unanswered.contains(n)),
        "applied an event that was never sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_started_just_before_a_kill_runs_after_the_restart() {
    let mut host = TestHost::start().await;
    let id = host.start_instance("E3_Counter", None, "41").await;
    assert_eq!(
        host.raise(&id, "operation", "\"incr\"").await.status,
        StatusCode::ACCEPTED
    );
    host.kill_now();

    host.restart().await;
    host.wait_for(&id, Duration::from_secs(30), |body| body["input"] == 42)
        .await;
    host.raise(&id, "operation", "\"end\"").await;
    let done: Value = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"], 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_accepted_while_an_instance_finishes_are_recorded_in_its_history() {
    // "end" completes the log while more items race in. Every item that got a
    // 202 must have been delivered (it shows in the history), none left behind.
    let host = TestHost::start().await;
    let id = host.start_instance("EventLog", None, "").await;
    host.wait_for_status(&id, "Running").await;

    let items = futures::stream::iter(0..400u64)
        .map(|n| {
            let (host, id) = (&host, &id);
            async move {
                if n == 50 {
                    host.raise(id, "item", "\"end\"").await;
                }
                (n, host.raise(id, "item", &n.to_string()).await.status)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let accepted: HashSet<u64> = items
        .iter()
        .filter(|(_, status)| *status == StatusCode::ACCEPTED)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        items
            .iter()
            .all(|(_, status)| *status == StatusCode::ACCEPTED || *status == StatusCode::GONE),
        "{items:?}"
    );

    host.wait_for_status(&id, "Completed").await;
    let reply = host.get(&format!("/instances/{id}?showHistory=true")).await;
    // Delivered: logged by earlier generations (the output), or delivered to
    // the last one and left unconsumed after "end" (its history).
    let logged = reply.body["output"].as_array().unwrap().iter();
    let unconsumed = reply.body["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["EventType"] == "EventRaised")
        .map(|event| &event["Input"]);
    let delivered: HashSet<u64> = logged
        .chain(unconsumed)
        .filter_map(|item| item.as_u64())
        .collect();
    let left_behind: Vec<&u64> = accepted.difference(&delivered).collect();
    assert!(
        left_behind.is_empty(),
        "accepted but never delivered: {left_behind:?}"
    );
}
