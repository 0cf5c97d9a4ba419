//! Throughput and latency on the real binary over HTTP (scenarios S1, S2,
//! S5, S6 and S7 of the performance issue), with the baselines that bound
//! them measured in the same run: SQLite's rate of single-row commits with
//! the host's settings (WAL, `synchronous=FULL`) on the same disk, and the
//! cost of a fresh guest execution (instantiate and construct), in-process.
//!
//! - S1: 10,000 starts of a trivial orchestrator, until all are Completed.
//! - S2: 20,000 events raised to 1,000 counters, until all are applied
//!   (exact final counts checked).
//! - S5: start → Completed latency, one client.
//! - S6: hello sequence (three activities in a row), until all Completed.
//! - S7: one activity, 10,000 starts, until all Completed.
//! - S8: 20,000 signals to 1,000 Counter entities, until all are applied
//!   (exact final counts checked); S2 is its baseline.
//!
//! Load comes from 32 concurrent clients in this process; the host is its
//! own process. Each rate is the median of three runs.
//!
//! Run with `cargo bench -p reprise-host --bench throughput`; name
//! scenarios after `--` (`-- s1 s5`) to run only those.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use reprise_host::runtime::{AllowedHosts, GuestLimits, Runtime};
use support::harness::{TestHost, components};
use support::load::{self, Balancer, Counters, Events, RUNS};
use support::{clients, ms, quantile};

const LATENCY_RUNS: usize = 200;
const COUNTERS: usize = 1_000;
const EVENTS: usize = 20_000;

fn main() {
    support::run(async {
        let commits = sqlite_commit_rate();
        let fresh_execution = fresh_execution_cost();
        let components = components();
        let host = TestHost::start_with(&[
            &components.startup_probe,
            &components.hello_sequence,
            &components.misbehaving,
            &components.counter,
            &components.counter_entity,
        ])
        .await;
        let sqlite = format!("SQLite: {commits:.0} single-row commits per second");
        let guest = format!("fresh guest execution: {fresh_execution:.0} µs (in-process)");
        let mut rows = Vec::new();
        if support::wanted("s5") {
            let mut latencies = start_to_completed(&host).await;
            let mut at = |q: f64| quantile(&mut latencies, q);
            rows.push(format!(
                "| S5: start → Completed, one client | p50 {:.2} ms, p99 {:.2} ms | p50 ≤ 3 ms, p99 ≤ 15 ms | one commit: {:.2} ms |",
                at(0.5),
                at(0.99),
                1000.0 / commits
            ));
        }
        if support::wanted("s1") {
            let trivial = median_rate(&host, "s1", "StartupProbe_0000", "", 10_000).await;
            rows.push(format!(
                "| S1: 10,000 trivial starts until all Completed | {trivial} | ≥ 12,000 per second | {sqlite}; {guest} |"
            ));
        }
        if support::wanted("s6") {
            let hello = median_rate(&host, "s6", "E1_HelloSequence", "", 3_000).await;
            rows.push(format!(
                "| S6: hello sequence (3 activities), 3,000 starts | {hello} | ≥ 3,000 per second | {sqlite} |"
            ));
        }
        if support::wanted("s7") {
            let one_activity = r#"{"activity":"Echo","input":1}"#;
            let activity = median_rate(&host, "s7", "CallActivity", one_activity, 10_000).await;
            rows.push(format!(
                "| S7: one activity, 10,000 starts | {activity} | ≥ 5,000 per second | {sqlite}; {guest} |"
            ));
        }
        if support::wanted("s2") {
            let events = median_event_rate(&host).await;
            rows.push(format!(
                "| S2: {EVENTS} events to {COUNTERS} counters, accepted and applied | {events} | ≥ 25,000 per second | {sqlite} |"
            ));
        }

        if support::wanted("s8") {
            let signals = median_signal_rate(&host).await;
            rows.push(format!(
                "| S8: {EVENTS} signals to {COUNTERS} Counter entities, accepted and applied | {signals} | none | S2 above |"
            ));
        }

        println!(
            "\nthroughput and latency, median of {RUNS} runs, {} clients\n",
            clients()
        );
        println!("| scenario | result | target | baseline, same run |");
        println!("|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
    });
}

/// Single-row transactions per second on a file beside the bench's temp
/// folders, with the host's pragmas.
fn sqlite_commit_rate() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let connection = rusqlite::Connection::open(dir.path().join("rate.db")).unwrap();
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE t (id INTEGER PRIMARY KEY, value TEXT NOT NULL);",
        )
        .unwrap();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(2) {
        connection
            .execute("INSERT INTO t (value) VALUES ('x')", [])
            .unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Microseconds to instantiate the trivial orchestrator and construct its
/// execution, in this process: what every new instance costs the host
/// before any history, HTTP or SQLite (median of 1,000).
fn fresh_execution_cost() -> f64 {
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        &components().startup_probe,
        folder.path().join("probe.wasm"),
    )
    .unwrap();
    let runtime = Runtime::new(GuestLimits::default(), AllowedHosts::default(), None).unwrap();
    runtime
        .load_functions_dir(folder.path(), |_, _| Ok(()))
        .unwrap();
    let mut samples: Vec<f64> = (0..1_000)
        .map(|n| {
            let started = Instant::now();
            let execution = runtime
                .start_execution("StartupProbe_0000", None, &format!("i{n}"), "null", 0)
                .unwrap();
            drop(execution);
            ms(started.elapsed()) * 1000.0
        })
        .collect();
    quantile(&mut samples, 0.5)
}

async fn start_to_completed(host: &TestHost) -> Vec<f64> {
    let mut samples = Vec::new();
    for _ in 0..LATENCY_RUNS {
        let started = Instant::now();
        let id = host.start_instance("StartupProbe_0000", None, "").await;
        loop {
            if host.status(&id).await.body["runtimeStatus"] == "Completed" {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(ms(started.elapsed()));
    }
    samples
}

/// The median rate of `RUNS` runs of `starts` instances of `name`, as
/// table text.
async fn median_rate(host: &TestHost, tag: &str, name: &str, input: &str, starts: usize) -> String {
    let runs = load::complete_runs(std::slice::from_ref(host), &[], tag, name, input, starts).await;
    eprintln!(
        "{tag}: host CPU {:.0} µs per instance",
        load::median(&runs, |run| run.host_cpu_micros)
    );
    load::summary(&runs)
}

/// S2: `COUNTERS` counters, then `EVENTS` "incr" events spread over them
/// per run, until every count is exactly what was sent (median of `RUNS`).
async fn median_event_rate(host: &TestHost) -> String {
    load::start_counters(
        std::slice::from_ref(host),
        Balancer::RoundRobin,
        "s2",
        COUNTERS,
    )
    .await;
    median_count_rate(host, Counters::Orchestrations, "s2").await
}

/// S8: `EVENTS` signals spread over `COUNTERS` Counter entities per run
/// (created by the first), until every count is exactly what was sent.
async fn median_signal_rate(host: &TestHost) -> String {
    median_count_rate(host, Counters::Entities, "s8").await
}

async fn median_count_rate(host: &TestHost, counters: Counters, tag: &str) -> String {
    let hosts = std::slice::from_ref(host);
    let to = Events {
        of: counters,
        tag,
        count: COUNTERS,
        balancer: Balancer::RoundRobin,
    };
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let expected = ((run + 1) * EVENTS / COUNTERS) as u64;
        let measured = load::count_events(hosts, &[], to, EVENTS, expected).await;
        eprintln!("{tag} run {run}: {measured:?}");
        runs.push(measured);
    }
    load::summary(&runs)
}
