//! What one orchestrator step may produce is bounded: a step with more
//! actions, a larger custom status or a larger payload than the host allows
//! fails its own
//! instance (saying which limit and how to raise it), records none of its
//! actions, and leaves every other instance alone.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestHost, components};

async fn limited_host() -> TestHost {
    let c = components();
    TestHost::prepare(&[&c.misbehaving, &c.counter, &c.hello_sequence])
        .with_args(&[
            "--max-actions-per-step",
            "10",
            "--max-custom-status-bytes",
            "1000",
            "--max-payload-bytes",
            "1000",
            "--max-history-entries",
            "30",
        ])
        .started()
        .await
}

async fn failure(host: &TestHost, id: &str) -> String {
    let failed = host
        .wait_for(id, Duration::from_secs(60), |body| {
            body["runtimeStatus"] == "Failed"
        })
        .await;
    failed["output"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_with_more_actions_than_allowed_fails_its_instance_and_sends_nothing() {
    let host = limited_host().await;
    host.start_instance("E3_Counter", Some("target"), "0").await;
    host.wait_for_status("target", "Running").await;

    let within =
        json!({ "instanceId": "target", "name": "operation", "payload": "incr", "times": 10 });
    let id = host
        .start_instance("Sender", Some("within"), &within.to_string())
        .await;
    host.wait_for_status(&id, "Completed").await;
    host.wait_for("target", Duration::from_secs(60), |body| {
        body["input"] == 10
    })
    .await;

    let beyond =
        json!({ "instanceId": "target", "name": "operation", "payload": "incr", "times": 11 });
    let id = host
        .start_instance("Sender", Some("beyond"), &beyond.to_string())
        .await;
    let reason = failure(&host, &id).await;
    assert!(
        reason.contains("11 actions") && reason.contains("--max-actions-per-step"),
        "{reason}"
    );
    let types = host.event_types(&id).await;
    assert!(!types.iter().any(|kind| kind == "EventSent"), "{types:?}");
    // None of its events arrived: the counter still counts 10, and works.
    host.raise("target", "operation", "\"incr\"").await;
    let target = host
        .wait_for("target", Duration::from_secs(60), |body| {
            body["input"] != 10
        })
        .await;
    assert_eq!(target["input"], 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_status_larger_than_allowed_fails_its_instance() {
    let host = limited_host().await;
    let id = host.start_instance("SetsStatus", None, "1000").await;
    let status = host.wait_for_status(&id, "Running").await;
    assert_eq!(status["customStatus"].as_str().unwrap().len(), 998);

    let id = host.start_instance("SetsStatus", None, "1001").await;
    let reason = failure(&host, &id).await;
    assert!(
        reason.contains("1001 bytes") && reason.contains("--max-custom-status-bytes"),
        "{reason}"
    );
    assert_eq!(host.status(&id).await.body["customStatus"], json!(null));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payload_larger_than_allowed_fails_the_instance_that_sends_it() {
    let host = limited_host().await;
    host.start_instance("E3_Counter", Some("target"), "0").await;
    let send = |bytes: usize| {
        json!({ "instanceId": "target", "name": "operation", "payload": "x".repeat(bytes - 2) })
            .to_string()
    };
    let id = host.start_instance("Sender", None, &send(1000)).await;
    host.wait_for_status(&id, "Completed").await;

    let id = host.start_instance("Sender", None, &send(1001)).await;
    let reason = failure(&host, &id).await;
    assert!(
        reason.contains("event 'operation' to 'target' is 1001 bytes")
            && reason.contains("--max-payload-bytes"),
        "{reason}"
    );
    let types = host.event_types(&id).await;
    assert!(!types.iter().any(|kind| kind == "EventSent"), "{types:?}");
}

/// An activity whose output is larger than allowed fails (the call, not
/// the host): the orchestrator sees an error naming the limit and the flag.
#[tokio::test(flavor = "multi_thread")]
async fn an_activity_output_larger_than_allowed_fails_the_call() {
    let host = limited_host().await;
    // "Hello {city}!": 7 bytes more than the city, quotes included.
    let call = |city_bytes: usize| {
        json!({ "activity": "E1_SayHello", "input": "x".repeat(city_bytes) }).to_string()
    };
    let id = host.start_instance("CallActivity", None, &call(991)).await;
    let done = host.wait_for_status(&id, "Completed").await;
    assert_eq!(done["output"].as_str().unwrap().len(), 998);

    let id = host.start_instance("CallActivity", None, &call(994)).await;
    let reason = failure(&host, &id).await;
    assert!(
        reason.contains("output of activity 'E1_SayHello' is 1003 bytes")
            && reason.contains("--max-payload-bytes"),
        "{reason}"
    );
}

/// A generation's history is bounded: an orchestrator that keeps adding to
/// it without continuing as new fails, naming the limit; others go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_history_longer_than_allowed_fails_its_instance() {
    let host = limited_host().await;
    host.start_instance("Accumulates", Some("grows"), "").await;
    host.start_instance("E3_Counter", Some("eternal"), "0")
        .await;
    for round in 1..=12 {
        host.raise("eternal", "operation", "\"incr\"").await;
        if host.raise("grows", "item", "1").await.status.as_u16() == 410 {
            break;
        }
        host.wait_for("eternal", Duration::from_secs(60), |body| {
            body["input"] == round
        })
        .await;
    }
    let reason = failure(&host, "grows").await;
    assert!(
        reason.contains("entries in this generation") && reason.contains("--max-history-entries"),
        "{reason}"
    );
    // Continue-as-new starts afresh: the counter went past the limit's worth.
    let eternal = host.status("eternal").await.body;
    assert_eq!(eternal["runtimeStatus"], "Running", "{eternal}");
}

/// A step may send many events to one instance: delivering them costs
/// what they are, not each of them the target's whole inbox again (that
/// made 20,000 sends take over a minute, every other write waiting).
#[tokio::test(flavor = "multi_thread")]
async fn a_step_sending_twenty_thousand_events_to_one_instance_commits_promptly() {
    let c = components();
    let host = TestHost::start_with(&[&c.misbehaving, &c.counter]).await;
    host.start_instance("Accumulates", Some("sink"), "").await;
    host.start_instance("E3_Counter", Some("victim"), "0").await;
    let storm = json!({ "instanceId": "sink", "name": "item", "payload": 1, "times": 20_000 });
    let id = host
        .start_instance("Sender", None, &storm.to_string())
        .await;
    host.raise("victim", "operation", "\"incr\"").await;
    host.wait_for(&id, Duration::from_secs(60), |body| {
        body["runtimeStatus"] == "Completed"
    })
    .await;
    host.wait_for("sink", Duration::from_secs(60), |body| {
        body["customStatus"] == 20_000
    })
    .await;
    host.wait_for("victim", Duration::from_secs(60), |body| body["input"] == 1)
        .await;
}

/// Events sent to an instance that does not exist are dropped, as Durable
/// Functions drops them, with one log line per target, not one per event.
#[tokio::test(flavor = "multi_thread")]
async fn events_sent_to_nobody_are_dropped_with_one_log_line() {
    let host = TestHost::start_with(&[&components().misbehaving]).await;
    let send = json!({ "instanceId": "nobody", "name": "item", "payload": 1, "times": 1_000 });
    let id = host.start_instance("Sender", None, &send.to_string()).await;
    host.wait_for_status(&id, "Completed").await;
    host.wait_for_log_lines(&["messages not delivered", "nobody", "1000"], 1)
        .await;
    let lines = host
        .log()
        .lines()
        .filter(|line| line.contains("not delivered"))
        .count();
    assert_eq!(lines, 1);
}

/// A flood of events held for a suspended instance is applied in episodes
/// of a bounded number of messages after the resume (each costs what it
/// applies, not the whole inbox): all of them, once each, in order. A
/// termination queued behind a flood is seen at once, not after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_events_is_applied_in_bounded_episodes_in_order() {
    let c = components();
    let host = TestHost::start_with(&[&c.event_log, &c.misbehaving]).await;
    host.start_instance("EventLog", Some("flooded"), "").await;
    host.start_instance("Accumulates", Some("doomed"), "").await;
    host.wait_for_status("flooded", "Running").await;
    host.wait_for_status("doomed", "Running").await;
    for id in ["flooded", "doomed"] {
        host.post(&format!("/instances/{id}/suspend"), "").await;
        host.wait_for_status(id, "Suspended").await;
    }
    let count = 1_000;
    for n in 0..count {
        host.raise("flooded", "item", &n.to_string()).await;
        host.raise("doomed", "item", &n.to_string()).await;
    }
    // "end", then 100 more it will never consume: recorded all the same.
    host.raise("flooded", "item", "\"end\"").await;
    for n in count..count + 100 {
        host.raise("flooded", "item", &n.to_string()).await;
    }
    host.post("/instances/flooded/resume", "").await;
    let terminate = host
        .post("/instances/doomed/terminate?reason=enough", "")
        .await;
    assert_eq!(terminate.status.as_u16(), 202);

    let done = host
        .wait_for("flooded", Duration::from_secs(120), |body| {
            !matches!(
                body["runtimeStatus"].as_str(),
                Some("Running" | "Suspended")
            )
        })
        .await;
    assert_eq!(done["runtimeStatus"], "Completed");
    assert_eq!(done["output"], json!((0..count).collect::<Vec<_>>()));
    let history = host.history("flooded").await;
    let raised: Vec<&Value> = history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["EventType"] == "EventRaised")
        .map(|event| &event["Input"])
        .collect();
    let late: Vec<Value> = (count..count + 100).map(|n| json!(n)).collect();
    assert!(
        raised.ends_with(&late.iter().collect::<Vec<_>>()),
        "events after the end are in its last history: {raised:?}"
    );
    let doomed = host.wait_for_status("doomed", "Terminated").await;
    assert_eq!(doomed["output"], "enough");
    assert!(host.inbox("doomed").is_empty());
}

/// A fan-out too large for one short transaction (3,000 activities: 6,000
/// rows) is staged: written ahead in batches, committed in a short
/// transaction, its activities queued after it a batch at a time. All of
/// them run once, and the result is right.
#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_too_large_for_one_transaction_is_staged_and_completes() {
    let host = TestHost::start_with(&[&components().fan_out_fan_in]).await;
    let id = host.start_instance("FanOutFanIn", None, "3000").await;
    let done = host
        .wait_for(&id, Duration::from_secs(120), |body| {
            body["runtimeStatus"] != "Running" && body["runtimeStatus"] != "Pending"
        })
        .await;
    assert_eq!(done["runtimeStatus"], "Completed", "{}", host.log());
    let n: u64 = 3000;
    assert_eq!(done["output"], n * (n + 1) * (2 * n + 1) / 6);
    let pending = host.database_rows("SELECT CAST(COUNT(*) AS TEXT) FROM outbox");
    assert_eq!(pending, ["0"]);
}

/// SIGKILL while the effects of a large step (50,000 sent events) are
/// being applied, a batch per transaction: after the restart the rest is
/// applied, and every event arrives exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_while_a_large_steps_effects_apply_loses_and_repeats_none() {
    let mut host = TestHost::start_with(&[&components().misbehaving]).await;
    host.start_instance("Accumulates", Some("sink"), "").await;
    host.wait_for_status("sink", "Running").await;
    let per_storm = 50_000;
    let mut sent = 0;
    let pending = "SELECT CAST(COUNT(*) AS TEXT) FROM instances WHERE outbox IS NOT NULL";
    // The window (committed, effects pending) lasts a fraction of a
    // second; a kill that misses it is followed by another storm.
    for attempt in 1..=5 {
        let storm =
            json!({ "instanceId": "sink", "name": "item", "payload": 1, "times": per_storm });
        host.start_instance("Sender", None, &storm.to_string())
            .await;
        sent += per_storm;
        host.wait_until("effects pending", Duration::from_secs(60), async || {
            let rows = host.database_rows(pending);
            (rows != ["0"]).then_some(()).ok_or(format!("{rows:?}"))
        })
        .await;
        host.kill();
        let landed = host.database_rows(pending) != ["0"];
        host.restart().await;
        if landed {
            eprintln!("the kill landed while effects were pending, storm {attempt}");
            break;
        }
        assert!(attempt < 5, "no kill landed while effects were pending");
    }
    host.wait_for("sink", Duration::from_secs(120), |body| {
        body["customStatus"] == sent
    })
    .await;
    // Exactly: one more event makes one more, not more.
    host.raise("sink", "item", "1").await;
    let sink = host
        .wait_for("sink", Duration::from_secs(60), |body| {
            body["customStatus"] != sent
        })
        .await;
    assert_eq!(sink["customStatus"], sent + 1);
}
