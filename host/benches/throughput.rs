//! Throughput and latency of trivial orchestrations, on the real binary
//! over HTTP (issue scenarios S1 and S5), with the baseline that bounds
//! them measured in the same run: SQLite's rate of single-row commits with
//! the host's settings (WAL, `synchronous=FULL`) on the same disk.
//!
//! - S1: 10,000 starts of a trivial orchestrator from 32 concurrent
//!   clients, until all are Completed.
//! - S5: start → Completed latency, one client.
//!
//! Run with `cargo bench -p reprise-host --bench throughput`.

#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::harness::{TestHost, components};
use support::{ms, quantile};

const STARTS: usize = 10_000;
const CLIENTS: usize = 32;
const LATENCY_RUNS: usize = 200;

fn main() {
    support::run(async {
        let commits = sqlite_commit_rate();
        let host = TestHost::start_with(&[&components().startup_probe]).await;
        let latencies = start_to_completed(&host).await;
        let (took, rate) = many_starts(&host).await;

        println!("\ntrivial orchestrations (StartupProbe_0000 completes at once)\n");
        println!("| scenario | result | baseline, same run |");
        println!("|---|---|---|");
        println!(
            "| S1: {STARTS} starts, {CLIENTS} clients, until all Completed | {rate:.0} per second ({took:.1?}) | SQLite: {commits:.0} single-row commits per second |"
        );
        let mut sorted = latencies;
        let mut at = |q: f64| quantile(&mut sorted, q);
        println!(
            "| S5: start → Completed, one client | p50 {:.2} ms, p99 {:.2} ms | one commit: {:.2} ms |",
            at(0.5),
            at(0.99),
            1000.0 / commits
        );
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

/// Starts `STARTS` instances from `CLIENTS` tasks, then waits until every
/// one has Completed; returns the time taken and the rate.
async fn many_starts(host: &TestHost) -> (Duration, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients = (0..CLIENTS).map(|_| {
        let next = Arc::clone(&next);
        let base = host.base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while next.fetch_add(1, Ordering::Relaxed) < STARTS {
                let reply = client
                    .post(format!("{base}/orchestrators/StartupProbe_0000"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), reqwest::StatusCode::ACCEPTED);
            }
        })
    });
    for client in futures::future::join_all(clients).await {
        client.unwrap();
    }
    // All accepted; wait until none is Pending or Running (a cheap query,
    // so the polling does not compete with the host for the CPU).
    loop {
        let unfinished = host
            .get("/instances?runtimeStatus=Pending,Running&top=1&showInput=false")
            .await
            .body;
        if unfinished.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    (took, STARTS as f64 / took.as_secs_f64())
}
