//! Managing many instances, on the real `reprise` binary over HTTP:
//!
//! - listing one page out of 1,000,000 instances (first page, a page from
//!   the middle by creation time, a status filter, an ID prefix, newest
//!   first) and counting them (per status, and a filter's matches, as the
//!   dashboard does), against the baseline of a point lookup of one
//!   instance in the same run;
//! - a bulk purge of 100,000 finished instances while a client keeps
//!   reading a status: how many requests it gets served during the purge,
//!   and how slow the slowest was, against the same client without a purge.
//!
//! The databases are seeded directly (one transaction each), since a
//! million starts over HTTP would measure the start path, not queries.
//!
//! Run with `cargo bench -p reprise-host --bench management`.

#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use reprise_store_sqlite::SqliteStore;
use support::harness::{TestHost, components};
use support::{ms, quantile};

const LISTED: usize = 1_000_000;
const PURGED: usize = 100_000;
/// History entries seeded per purged instance, so a purge deletes real rows.
const HISTORY_PER_INSTANCE: usize = 4;
const BASE_TIME: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn main() {
    support::run(async {
        listing().await;
        purging().await;
    });
}

/// Writes `count` instances straight into the host's database: every tenth
/// Running, the rest Completed, created a millisecond apart.
fn seed(path: &Path, count: usize, history_per_instance: usize) {
    drop(SqliteStore::open(path).expect("creates the schema"));
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let transaction = connection.transaction().unwrap();
    {
        let mut instance = transaction
            .prepare(
                "INSERT INTO instances (instance_id, name, status, generation, input, output,
                   custom_status, created_at, updated_at, original_input)
                 VALUES (?1, 'E3_Counter', ?2, 0, '0', ?3, NULL, ?4, ?4, '0')",
            )
            .unwrap();
        let mut history = transaction
            .prepare(
                "INSERT INTO history (instance_id, generation, seq, entry)
                 VALUES (?1, 0, ?2, '{\"type\":\"OrchestratorStarted\",\"timestamp\":1}')",
            )
            .unwrap();
        for n in 0..count {
            let id = format!("inst-{n:07}");
            let running = n % 10 == 0;
            let (status, output) = if running {
                ("Running", None)
            } else {
                ("Completed", Some("1"))
            };
            instance
                .execute(rusqlite::params![id, status, output, BASE_TIME + n as i64])
                .unwrap();
            for seq in 0..history_per_instance {
                history.execute(rusqlite::params![id, seq as i64]).unwrap();
            }
        }
    }
    transaction.commit().unwrap();
}

/// Milliseconds of each of `rounds` runs of `request`.
async fn time_requests(rounds: usize, mut request: impl AsyncFnMut()) -> Vec<f64> {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        request().await;
        samples.push(ms(started.elapsed()));
    }
    samples
}

async fn listing() {
    let host = TestHost::prepare(&[&components().counter]);
    let started = Instant::now();
    seed(&host.database(), LISTED, 0);
    eprintln!("seeded {LISTED} instances in {:.1?}", started.elapsed());
    let host = host.started().await;

    let get = |path: String| {
        let host = &host;
        async move || {
            let reply = host.get(&path).await;
            assert!(reply.status.is_success(), "{path}: {:?}", reply.body);
        }
    };
    let middle = "2026-01-01T00:08:20Z"; // 500,000 ms after the first
    let cases = [
        (
            "baseline: status of one instance",
            "/instances/inst-0500000".to_owned(),
        ),
        ("first page (top=100)", "/instances?top=100".to_owned()),
        (
            "page from the middle (createdTimeFrom)",
            format!("/instances?top=100&createdTimeFrom={middle}"),
        ),
        (
            "status filter (runtimeStatus=Running)",
            format!("/instances?top=100&runtimeStatus=Running&createdTimeFrom={middle}"),
        ),
        (
            "selective ID prefix, 100 matches (instanceIdPrefix=inst-05000)",
            "/instances?top=100&instanceIdPrefix=inst-05000".to_owned(),
        ),
        (
            "broad ID prefix, 100,000 matches (instanceIdPrefix=inst-05)",
            "/instances?top=100&instanceIdPrefix=inst-05".to_owned(),
        ),
        (
            "newest first (order=newest), as the dashboard lists",
            "/instances?top=50&order=newest&showInput=false".to_owned(),
        ),
        ("counts per status (GET counts)", "/counts".to_owned()),
        (
            "counts and a filter's matches, 100 (instanceIdPrefix=inst-05000)",
            "/counts?instanceIdPrefix=inst-05000".to_owned(),
        ),
        (
            "counts and a filter's matches, capped at 10,000 (runtimeStatus=Running)",
            "/counts?runtimeStatus=Running".to_owned(),
        ),
    ];
    println!("\nlisting one page out of {LISTED} instances, 20 requests each\n");
    println!("| case | p50 ms | max ms |");
    println!("|---|---|---|");
    for (case, path) in cases {
        let samples = time_requests(20, get(path)).await;
        report(case, samples);
    }
}

async fn purging() {
    let host = TestHost::prepare(&[&components().counter]);
    seed(&host.database(), PURGED, HISTORY_PER_INSTANCE);
    let host = host.started().await;
    // inst-0000000 is Running: never purged, read throughout.
    let read = async || {
        let reply = host.get("/instances/inst-0000000").await;
        assert!(reply.status.is_success());
    };

    // Baseline: the same reader for a fixed time, without a purge.
    let window = Duration::from_secs(2);
    let mut baseline = Vec::new();
    let until = Instant::now() + window;
    while Instant::now() < until {
        baseline.extend(time_requests(1, read).await);
    }

    let purge = {
        let url = format!(
            "{}/instances?createdTimeFrom=2000-01-01T00:00:00Z",
            host.base
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = reqwest::Client::new().delete(url).send().await.unwrap();
            let body: serde_json::Value = reply.json().await.unwrap();
            (started.elapsed(), body)
        })
    };
    let mut during = Vec::new();
    while !purge.is_finished() {
        during.extend(time_requests(1, read).await);
    }
    let (took, body) = purge.await.unwrap();
    let deleted = body["instancesDeleted"].as_u64().unwrap();
    assert_eq!(deleted as usize, PURGED - PURGED / 10);

    println!(
        "\nbulk purge of {deleted} finished instances ({HISTORY_PER_INSTANCE} history rows each) took {took:.1?}; a status reader meanwhile:\n"
    );
    println!("| case | requests | per second | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    report_rate("baseline: no purge", baseline, window);
    report_rate("during the purge", during, took);
}

fn report(case: &str, mut samples: Vec<f64>) {
    let p50 = quantile(&mut samples, 0.5);
    let max = quantile(&mut samples, 1.0);
    println!("| {case} | {p50:.2} | {max:.2} |");
}

fn report_rate(case: &str, mut samples: Vec<f64>, over: Duration) {
    let count = samples.len();
    let rate = count as f64 / over.as_secs_f64();
    let p50 = quantile(&mut samples, 0.5);
    let p99 = quantile(&mut samples, 0.99);
    let max = quantile(&mut samples, 1.0);
    println!("| {case} | {count} | {rate:.0} | {p50:.2} | {p99:.2} | {max:.2} |");
}
