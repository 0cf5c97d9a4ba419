//! Several hosts on one PostgreSQL database, behind no load balancer but
//! the tests' own round robin: every guarantee holds across hosts, and a
//! host that dies or freezes loses nothing, its work taken over by the
//! others within a lease. On SQLite (one host per file) these return at
//! once; `scripts/test` runs them on PostgreSQL.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestHost, components, event_types, fixed_port, on_sqlite};

/// A short lease, so a dead host's work moves within seconds.
const LEASE: &[&str] = &["--lease-ttl-secs", "2"];

/// A lease no stall of a loaded machine outlasts: work moves only by a
/// hand-over, a clean stop or a restart, never because a lease ran out.
const MINUTE_LEASE: &[&str] = &["--lease-ttl-secs", "60"];

/// `count` hosts serving `files` on one fresh database.
async fn hosts(count: usize, files: &[&Path]) -> Vec<TestHost> {
    hosts_leasing(count, files, LEASE).await
}

/// [`hosts`] with the lease flags `lease`.
async fn hosts_leasing(count: usize, files: &[&Path], lease: &[&str]) -> Vec<TestHost> {
    let first = TestHost::prepare(files).with_args(lease).started().await;
    let mut hosts = Vec::new();
    for _ in 1..count {
        let host = TestHost::prepare(files)
            .with_args(lease)
            .sharing_database_with(&first)
            .started()
            .await;
        hosts.push(host);
    }
    hosts.insert(0, first);
    hosts
}

/// Three hosts started at once on an empty database: one creates the
/// schema while the others wait their turn (an advisory lock), and all
/// three serve.
#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_starting_at_once_on_an_empty_database_all_serve() {
    if on_sqlite() {
        return;
    }
    let files: &[&Path] = &[&components().counter];
    let first = TestHost::prepare(files).with_args(LEASE);
    let second = TestHost::prepare(files)
        .with_args(LEASE)
        .sharing_database_with(&first);
    let third = TestHost::prepare(files)
        .with_args(LEASE)
        .sharing_database_with(&first);
    let hosts = futures::future::join3(first.started(), second.started(), third.started()).await;
    for (n, host) in [&hosts.0, &hosts.1, &hosts.2].into_iter().enumerate() {
        host.start_instance("E3_Counter", Some(&format!("c{n}")), "0")
            .await;
    }
    hosts
        .2
        .wait_for("c0", Duration::from_secs(30), |body| {
            body["runtimeStatus"] == "Running"
        })
        .await;
}

/// 100 concurrent starts of one ID spread over 3 hosts: exactly one 202,
/// every other one 409, never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn a_singleton_started_at_once_on_three_hosts_starts_once() {
    if on_sqlite() {
        return;
    }
    let hosts = hosts(3, &[&components().counter]).await;
    let starts = (0..100).map(|n| {
        let host = &hosts[n % 3];
        async move {
            host.post("/orchestrators/E3_Counter/the-one", "0")
                .await
                .status
        }
    });
    let statuses = futures::future::join_all(starts).await;
    let count = |wanted: StatusCode| statuses.iter().filter(|&&s| s == wanted).count();
    assert_eq!(count(StatusCode::ACCEPTED), 1, "{statuses:?}");
    assert_eq!(count(StatusCode::CONFLICT), 99, "{statuses:?}");
}

/// Events for one counter sent to all three hosts at once, while the host
/// that runs it is SIGKILLed and never comes back: every event a host
/// answered 202 is applied exactly once, by the hosts that are left.
#[tokio::test(flavor = "multi_thread")]
async fn events_spread_over_three_hosts_survive_the_owners_death() {
    if on_sqlite() {
        return;
    }
    let hosts = hosts(3, &[&components().counter]).await;
    // Started on host 0, which runs it.
    let id = hosts[0].start_instance("E3_Counter", Some("c"), "0").await;
    let accepted = AtomicUsize::new(0);
    // Requests the kill cut off: perhaps committed, perhaps not.
    let uncertain = AtomicUsize::new(0);
    let killed = Mutex::new(false);
    let owner = &hosts[0];
    let senders = hosts.iter().enumerate().map(|(index, host)| {
        let (id, accepted, uncertain, killed) = (&id, &accepted, &uncertain, &killed);
        async move {
            for _ in 0..150 {
                match host
                    .try_post(&format!("/instances/{id}/raiseEvent/operation"), "\"incr\"")
                    .await
                {
                    Ok(reply) if reply.status == StatusCode::ACCEPTED => {
                        let total = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                        if total == 60 {
                            *killed.lock().unwrap() = true;
                            owner.kill_now();
                        }
                    }
                    Ok(reply) => panic!("host {index} answered {reply:?}"),
                    Err(_) if index == 0 && *killed.lock().unwrap() => {
                        uncertain.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Err(error) => panic!("host {index} failed: {error}"),
                }
            }
        }
    });
    futures::future::join_all(senders).await;
    let (accepted, uncertain) = (
        accepted.load(Ordering::SeqCst),
        uncertain.load(Ordering::SeqCst),
    );
    assert!(*killed.lock().unwrap(), "the kill never happened");
    let done = hosts[1]
        .wait_for(&id, Duration::from_secs(60), |body| {
            body["input"].as_u64() >= Some(accepted as u64)
        })
        .await;
    let count = done["input"].as_u64().unwrap() as usize;
    assert!(
        count <= accepted + uncertain,
        "{count} applied, {accepted} accepted and {uncertain} cut off"
    );
    // And nothing more arrives later: another event lands on top of them.
    assert_eq!(
        hosts[2].raise(&id, "operation", "\"incr\"").await.status,
        StatusCode::ACCEPTED
    );
    hosts[1]
        .wait_for(&id, Duration::from_secs(60), |body| {
            body["input"] == json!(count + 1)
        })
        .await;
}

/// A durable timer and an activity running on a host when it is killed
/// (never restarted) are finished by the others: the timer fires once,
/// the activity runs again and is recorded once.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_hosts_timers_and_activities_finish_on_the_others() {
    if on_sqlite() {
        return;
    }
    let mut hosts = hosts(2, &[&components().misbehaving]).await;
    let sleeper = hosts[0].start_instance("Sleeps", None, "2000").await;
    let call = r#"{"activity": "SlowEcho", "input": {"ms": 3000, "value": "survived"}}"#;
    let caller = hosts[0].start_instance("CallActivity", None, call).await;
    hosts[0].wait_for_log("SlowEcho running").await;
    assert_eq!(
        hosts[0].pending_timers(&sleeper).len(),
        1,
        "the timer fired too early"
    );
    hosts[0].kill();

    let slept = hosts[1].wait_for_status(&sleeper, "Completed").await;
    let fired = event_types(&hosts[1].history(&sleeper).await)
        .iter()
        .filter(|kind| *kind == "TimerFired")
        .count();
    assert_eq!(fired, 1, "{slept}");
    let done = hosts[1].wait_for_status(&caller, "Completed").await;
    assert_eq!(done["output"], "survived");
    let types = event_types(&hosts[1].history(&caller).await);
    assert_eq!(
        types.iter().filter(|kind| *kind == "TaskCompleted").count(),
        1,
        "{types:?}"
    );
    assert!(hosts[1].log().contains("SlowEcho running"));
}

/// A host frozen (SIGSTOP) past its lease is taken for dead: another host
/// takes its instance over; once it thaws it learns it lost its lease,
/// commits nothing on the state it held, and events sent to it still
/// reach the instance, each applied once.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_host_that_thaws_after_its_lease_commits_nothing_stale() {
    if on_sqlite() {
        return;
    }
    let hosts = hosts(2, &[&components().counter]).await;
    let (frozen, other) = (&hosts[0], &hosts[1]);
    let id = frozen.start_instance("E3_Counter", Some("c"), "0").await;
    // Applied by the owner, which keeps the execution warm.
    incr(frozen, &id, 5).await;
    frozen
        .wait_for(&id, Duration::from_secs(30), |body| body["input"] == 5)
        .await;

    frozen.pause();
    incr(other, &id, 5).await;
    let taken_over = other
        .wait_for(&id, Duration::from_secs(60), |body| body["input"] == 10)
        .await;
    frozen.resume();
    frozen.wait_for_log("this host's lease expired").await;

    // Its warm execution (at 5) is stale: events sent to it go to the
    // owner now.
    incr(frozen, &id, 5).await;
    other
        .wait_for(&id, Duration::from_secs(60), |body| body["input"] == 15)
        .await;
    let history: Value = other.history(&id).await;
    assert!(taken_over["runtimeStatus"] == "Running", "{history}");
}

/// An instance whose events keep arriving at another host (behind a
/// balancer that hashes instance IDs, after a host was down) is handed
/// over to that host, which then applies them in the transactions that
/// accept them. Spread round robin, they never move it. Every event is
/// applied once.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_moves_to_the_host_its_events_keep_arriving_at() {
    if on_sqlite() {
        return;
    }
    let hosts = hosts_leasing(2, &[&components().counter], MINUTE_LEASE).await;
    let (first, second) = (&hosts[0], &hosts[1]);
    let id = first.start_instance("E3_Counter", Some("c"), "0").await;
    // Round robin: the host running it accepts every other event. Each
    // pair is applied before the next is sent, so the wake-up for the
    // other host's event has come before the next event this host accepts
    // (wake-ups delayed all together could otherwise arrive in a row).
    for pair in 1..=20 {
        incr(first, &id, 1).await;
        incr(second, &id, 1).await;
        first
            .wait_for(&id, Duration::from_secs(30), |body| {
                body["input"] == 2 * pair
            })
            .await;
    }
    assert_eq!(
        (runs_on(first, &id), handed_over(first).await),
        (seat_of(first), 0.0)
    );

    incr(second, &id, 40).await;
    second
        .wait_for(&id, Duration::from_secs(60), |body| body["input"] == 80)
        .await;
    assert_eq!(runs_on(first, &id), seat_of(second));
    assert_eq!(handed_over(first).await, 1.0);
    assert_eq!(handed_over(second).await, 0.0);
}

/// Sends counter `id` `times` "incr" events through `host`, each answered
/// 202.
async fn incr(host: &TestHost, id: &str, times: usize) {
    for _ in 0..times {
        let reply = host.raise(id, "operation", "\"incr\"").await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    }
}

/// The address in the seat of the host that runs `id`.
fn runs_on(host: &TestHost, id: &str) -> String {
    let seats = host.database_rows(&format!(
        "SELECT h.seat FROM instances i JOIN hosts h ON h.host_id = i.owner
         WHERE i.instance_id = '{id}'"
    ));
    let [seat] = &seats[..] else {
        panic!("{id} has no live owner: {seats:?}");
    };
    seat.rsplit('/').next().unwrap_or_default().to_owned()
}

/// The address `host` serves on, as its seat names it.
fn seat_of(host: &TestHost) -> String {
    host.root_url().trim_start_matches("http://").to_owned()
}

/// `reprise_instances_handed_over_total` on `host`.
async fn handed_over(host: &TestHost) -> f64 {
    host.metric("reprise_instances_handed_over_total")
        .await
        .expect("the host counts instances handed over")
}

/// A host stopped with SIGTERM hands its instances over at once, without
/// the others waiting for its lease (a minute, here) to run out.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_stopped_cleanly_hands_its_work_over_at_once() {
    if on_sqlite() {
        return;
    }
    let files: &[&Path] = &[&components().counter];
    let mut leaving = TestHost::prepare(files)
        .with_args(MINUTE_LEASE)
        .started()
        .await;
    let staying = TestHost::prepare(files)
        .with_args(MINUTE_LEASE)
        .sharing_database_with(&leaving)
        .started()
        .await;
    let id = leaving.start_instance("E3_Counter", Some("c"), "0").await;
    leaving.stop();
    assert_eq!(
        leaving.wait_for_exit(Duration::from_secs(30)).await,
        Some(0)
    );
    let reply = staying.raise(&id, "operation", "\"incr\"").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    // Well within the lease: taken over, not waited out.
    staying
        .wait_for(&id, Duration::from_secs(30), |body| body["input"] == 1)
        .await;
}

/// A host SIGKILLed and restarted on its machine and address (its seat)
/// takes its work back at once: only one process can hold the address, so
/// its previous run is gone, and nobody waits out that run's lease (a
/// minute, here) for its instance or its leased activity.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_restarted_after_a_crash_takes_its_work_back_at_once() {
    if on_sqlite() {
        return;
    }
    let address = format!("127.0.0.1:{}", fixed_port());
    let mut host = TestHost::prepare(&[&components().misbehaving])
        .with_args(MINUTE_LEASE)
        .listening_on(&address)
        .started()
        .await;
    let call = r#"{"activity": "SlowEcho", "input": {"ms": 3000, "value": "survived"}}"#;
    let caller = host.start_instance("CallActivity", None, call).await;
    host.wait_for_log("SlowEcho running").await;

    host.restart().await;
    let done = host.wait_for_status(&caller, "Completed").await;
    assert_eq!(done["output"], "survived");
    assert!(
        host.log().contains("ended this host's previous run"),
        "{}",
        host.log()
    );
}

/// A second host given an address another host holds fails before it
/// touches the database: it neither registers nor ends the host there.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_cannot_have_its_address_touches_nothing() {
    if on_sqlite() {
        return;
    }
    let address = format!("127.0.0.1:{}", fixed_port());
    let serving = TestHost::prepare(&[&components().counter])
        .listening_on(&address)
        .started()
        .await;
    let refused = TestHost::prepare(&[&components().counter])
        .listening_on(&address)
        .sharing_database_with(&serving)
        .start_expecting_failure();
    assert!(refused.contains("cannot listen on"), "{refused}");
    assert_eq!(serving.database_rows("SELECT count(*) FROM hosts"), ["1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_stops_when_a_newer_host_upgrades_the_schema_under_it() {
    if on_sqlite() {
        return;
    }
    let mut old = hosts(1, &[&components().event_log]).await.remove(0);
    let id = old.start_instance("EventLog", None, "null").await;
    old.wait_for_status(&id, "Running").await;

    // What a newer release's first host does on start-up.
    old.alter_database("UPDATE reprise_schema SET version = version + 1");
    assert_eq!(old.wait_for_exit(Duration::from_secs(30)).await, Some(75));
    assert!(
        old.log()
            .contains("a newer host upgraded it; this host stops"),
        "{}",
        old.log()
    );
    // Restarted as it is, it refuses the database and says why.
    let refused = old.start_expecting_failure();
    assert!(
        refused.contains("newer than this host understands"),
        "{refused}"
    );
}

/// Entities whose host is SIGKILLed mid-stream (never restarted) are taken
/// over by the others: every signal a host answered 202 applies exactly
/// once, and transfers between accounts it ran, locks and all, finish
/// with not a cent lost or made.
#[tokio::test(flavor = "multi_thread")]
async fn entities_of_a_dead_host_are_taken_over_with_nothing_lost_or_applied_twice() {
    if on_sqlite() {
        return;
    }
    let c = components();
    let hosts = hosts(3, &[&c.counter_entity, &c.bank_transfer]).await;
    // Created, and so run, by host 0.
    for (path, input) in [
        ("Counter/shared?op=add", "1"),
        ("Account/a?op=deposit", "500"),
        ("Account/b?op=deposit", "500"),
    ] {
        let reply = hosts[0].post(&format!("/entities/{path}"), input).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    let mut transfers = Vec::new();
    for n in 0..6 {
        let (from, to) = if n % 2 == 0 { ("a", "b") } else { ("b", "a") };
        let input = json!({"from": from, "to": to, "amount": 5}).to_string();
        transfers.push(
            hosts[1 + n % 2]
                .start_instance("Transfer", None, &input)
                .await,
        );
    }
    let accepted = AtomicUsize::new(0);
    let uncertain = AtomicUsize::new(0);
    let killed = Mutex::new(false);
    let owner = &hosts[0];
    let senders = hosts.iter().enumerate().map(|(index, host)| {
        let (accepted, uncertain, killed) = (&accepted, &uncertain, &killed);
        async move {
            for _ in 0..60 {
                match host.try_post("/entities/Counter/shared?op=add", "1").await {
                    Ok(reply) if reply.status == StatusCode::ACCEPTED => {
                        if accepted.fetch_add(1, Ordering::SeqCst) + 1 == 40 {
                            *killed.lock().unwrap() = true;
                            owner.kill_now();
                        }
                    }
                    Ok(reply) => panic!("host {index} answered {reply:?}"),
                    Err(_) if index == 0 && *killed.lock().unwrap() => {
                        uncertain.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Err(error) => panic!("host {index} failed: {error}"),
                }
            }
        }
    });
    futures::future::join_all(senders).await;
    assert!(*killed.lock().unwrap(), "the kill never happened");
    let (accepted, uncertain) = (
        accepted.load(Ordering::SeqCst) as u64 + 1,
        uncertain.load(Ordering::SeqCst) as u64,
    );
    let survivor = &hosts[1];
    let count = survivor
        .wait_until(
            "every accepted signal",
            Duration::from_secs(60),
            async || {
                let state = survivor.get("/entities/Counter/shared").await.body;
                match state.as_u64() {
                    Some(count) if count >= accepted => Ok(count),
                    _ => Err(state.to_string()),
                }
            },
        )
        .await;
    assert!(
        count <= accepted + uncertain,
        "{count} applied, {accepted} accepted and {uncertain} cut off"
    );
    for id in &transfers {
        let done = survivor.wait_for_status(id, "Completed").await;
        assert_eq!(done["output"]["transferred"], true, "{done}");
    }
    let balance = async |key: &str| survivor.get(&format!("/entities/Account/{key}")).await.body;
    assert_eq!(balance("a").await, json!(500));
    assert_eq!(balance("b").await, json!(500));
    // Nothing more arrives later: one more signal lands on top.
    let reply = hosts[2].post("/entities/Counter/shared?op=add", "1").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    survivor
        .wait_until("one more", Duration::from_secs(60), async || {
            let state = survivor.get("/entities/Counter/shared").await.body;
            match state == json!(count + 1) {
                true => Ok(()),
                false => Err(state.to_string()),
            }
        })
        .await;
}
