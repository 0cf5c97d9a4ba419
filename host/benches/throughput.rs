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
use support::{CLIENTS, CpuMeter, from_clients, ms, quantile};

const RUNS: usize = 3;
const LATENCY_RUNS: usize = 200;
const COUNTERS: usize = 1_000;
const EVENTS: usize = 20_000;

fn main() {
    // `cargo bench --bench throughput -- s1 s5` runs only those scenarios.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted = |tag: &str| only.is_empty() || only.iter().any(|arg| arg == tag);
    support::run(async {
        let commits = sqlite_commit_rate();
        let fresh_execution = fresh_execution_cost();
        let components = components();
        let host = TestHost::start_with(&[
            &components.startup_probe,
            &components.hello_sequence,
            &components.misbehaving,
            &components.counter,
        ])
        .await;
        let sqlite = format!("SQLite: {commits:.0} single-row commits per second");
        let guest = format!("fresh guest execution: {fresh_execution:.0} µs (in-process)");
        let mut rows = Vec::new();
        if wanted("s5") {
            let mut latencies = start_to_completed(&host).await;
            let mut at = |q: f64| quantile(&mut latencies, q);
            rows.push(format!(
                "| S5: start → Completed, one client | p50 {:.2} ms, p99 {:.2} ms | p50 ≤ 3 ms, p99 ≤ 15 ms | one commit: {:.2} ms |",
                at(0.5),
                at(0.99),
                1000.0 / commits
            ));
        }
        if wanted("s1") {
            let trivial = median_rate(&host, "s1", "StartupProbe_0000", "", 10_000).await;
            rows.push(format!(
                "| S1: 10,000 trivial starts until all Completed | {trivial} | ≥ 12,000 per second | {sqlite}; {guest} |"
            ));
        }
        if wanted("s6") {
            let hello = median_rate(&host, "s6", "E1_HelloSequence", "", 3_000).await;
            rows.push(format!(
                "| S6: hello sequence (3 activities), 3,000 starts | {hello} | ≥ 3,000 per second | {sqlite} |"
            ));
        }
        if wanted("s7") {
            let one_activity = r#"{"activity":"Echo","input":1}"#;
            let activity = median_rate(&host, "s7", "CallActivity", one_activity, 10_000).await;
            rows.push(format!(
                "| S7: one activity, 10,000 starts | {activity} | ≥ 5,000 per second | {sqlite}; {guest} |"
            ));
        }
        if wanted("s2") {
            let events = median_event_rate(&host).await;
            rows.push(format!(
                "| S2: {EVENTS} events to {COUNTERS} counters, accepted and applied | {events} | ≥ 25,000 per second | {sqlite} |"
            ));
        }

        println!("\nthroughput and latency, median of {RUNS} runs, {CLIENTS} clients\n");
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

/// The median of `RUNS` runs of [`completed_per_second`], as table text.
async fn median_rate(host: &TestHost, tag: &str, name: &str, input: &str, starts: usize) -> String {
    let mut rates = Vec::new();
    for run in 0..RUNS {
        let prefix = format!("{tag}r{run}-");
        rates.push(completed_per_second(host, &prefix, name, input, starts).await);
        eprintln!("{tag} run {run}: {:.0} per second", rates[run]);
    }
    summary(rates)
}

/// "median per second (runs: each)".
fn summary(mut rates: Vec<f64>) -> String {
    let all: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
    format!(
        "{:.0} per second (runs: {})",
        quantile(&mut rates, 0.5),
        all.join(", ")
    )
}

/// Starts `starts` instances of `name` under IDs beginning with `prefix`
/// from `CLIENTS` tasks, waits until all have Completed, and returns how
/// many completed per second.
async fn completed_per_second(
    host: &TestHost,
    prefix: &str,
    name: &str,
    input: &str,
    starts: usize,
) -> f64 {
    let started = Instant::now();
    let cpu = CpuMeter::start(host.pid());
    let paths: Vec<String> = (0..starts)
        .map(|n| format!("{}/orchestrators/{name}/{prefix}{n}", host.base))
        .collect();
    from_clients(paths, input).await;
    wait_until_none(
        host,
        &format!("runtimeStatus=Pending,Running&instanceIdPrefix={prefix}"),
    )
    .await;
    let failed = host
        .get(&format!(
            "/instances?runtimeStatus=Failed&instanceIdPrefix={prefix}&top=1"
        ))
        .await
        .body;
    assert_eq!(failed.as_array().map(Vec::len), Some(0), "{failed}");
    if let Some(per) = cpu.micros_per(starts) {
        eprintln!("{prefix}: host CPU {per:.0} µs per instance");
    }
    starts as f64 / started.elapsed().as_secs_f64()
}

/// Waits until the instance query `filter` matches nothing (a cheap query,
/// so polling does not compete with the host for the CPU).
async fn wait_until_none(host: &TestHost, filter: &str) {
    loop {
        let page = host
            .get(&format!("/instances?{filter}&top=1&showInput=false"))
            .await
            .body;
        if page.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// S2: `COUNTERS` counters, then `EVENTS` "incr" events spread over them
/// per run, until every count is exactly what was sent (median of `RUNS`).
async fn median_event_rate(host: &TestHost) -> String {
    let urls: Vec<String> = (0..COUNTERS)
        .map(|n| format!("{}/orchestrators/E3_Counter/s2-{n}", host.base))
        .collect();
    from_clients(urls, "0").await;
    wait_until_none(host, "runtimeStatus=Pending&instanceIdPrefix=s2-").await;

    let mut rates = Vec::new();
    for run in 0..RUNS {
        let started = Instant::now();
        let cpu = CpuMeter::start(host.pid());
        let urls: Vec<String> = (0..EVENTS)
            .map(|n| {
                let counter = n % COUNTERS;
                format!("{}/instances/s2-{counter}/raiseEvent/operation", host.base)
            })
            .collect();
        from_clients(urls, "\"incr\"").await;
        let accepted = started.elapsed();
        let expected = ((run + 1) * EVENTS / COUNTERS) as u64;
        loop {
            let page = host
                .get(&format!("/instances?instanceIdPrefix=s2-&top={COUNTERS}"))
                .await
                .body;
            let counts: Vec<u64> = page
                .as_array()
                .unwrap()
                .iter()
                .map(|status| status["input"].as_u64().unwrap_or(0))
                .collect();
            assert_eq!(counts.len(), COUNTERS);
            assert!(
                counts.iter().all(|&count| count <= expected),
                "a counter counted an event twice"
            );
            if counts.iter().all(|&count| count == expected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rate = EVENTS as f64 / started.elapsed().as_secs_f64();
        if let Some(per) = cpu.micros_per(EVENTS) {
            eprintln!("s2 run {run}: host CPU {per:.0} µs per event");
        }
        eprintln!(
            "s2 run {run}: {rate:.0} per second ({:.0} accepted per second)",
            EVENTS as f64 / accepted.as_secs_f64()
        );
        rates.push(rate);
    }
    summary(rates)
}
