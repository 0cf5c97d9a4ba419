//! Cost of an event as the history grows: warm executions (the live guest
//! steps once with the new event) against cold replay (the guest replays
//! the whole history first), on the real binary over HTTP.
//!
//! Each sample raises one event and polls the status until the
//! orchestrator has counted it. Baseline, same run: the same at a
//! 10-event history.
//!
//! Run with `cargo bench -p reprise-host --bench history`.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use support::harness::{TestHost, components};
use support::{ms, quantile};

const LONG: u64 = 10_000;
const SAMPLES: usize = 20;

fn main() {
    support::run(async {
        let host = TestHost::start_with(&[&components().misbehaving]).await;
        let id = host.start_instance("Accumulates", Some("acc"), "").await;
        let mut count = 0;
        for _ in 0..10 {
            count = apply_one(&host, &id, count).await.0;
        }
        let short = samples(&host, &id, &mut count, SAMPLES).await;

        // Grow the history to LONG events, many at a time.
        while count < LONG {
            let batch = (LONG - count).min(200);
            let raises = (0..batch).map(|_| host.raise(&id, "item", "null"));
            for reply in futures::future::join_all(raises).await {
                assert!(reply.status.is_success());
            }
            count += batch;
            wait_counted(&host, &id, count).await;
        }
        let long_warm = samples(&host, &id, &mut count, SAMPLES).await;

        let mut host = host.with_args(&["--warm-executions", "0"]);
        host.restart().await;
        let long_cold = samples(&host, &id, &mut count, SAMPLES / 2).await;

        println!("\nevent applied, raise to visible in status (ms), history of N events\n");
        println!("| case | p50 ms | max ms |");
        println!("|---|---|---|");
        report("baseline: warm, 10 events", short.clone());
        report(&format!("warm, {LONG} events"), long_warm.clone());
        report(&format!("cold replay, {LONG} events"), long_cold);
        println!(
            "\nwarm cost at {LONG} events / at 10 events: {:.2}",
            median(long_warm) / median(short)
        );
    });
}

async fn samples(host: &TestHost, id: &str, count: &mut u64, n: usize) -> Vec<f64> {
    let mut taken = Vec::new();
    for _ in 0..n {
        let (next, ms) = apply_one(host, id, *count).await;
        *count = next;
        taken.push(ms);
    }
    taken
}

/// Raises one event and waits until it is counted; (new count, ms).
async fn apply_one(host: &TestHost, id: &str, count: u64) -> (u64, f64) {
    let started = Instant::now();
    assert!(host.raise(id, "item", "null").await.status.is_success());
    wait_counted(host, id, count + 1).await;
    (count + 1, ms(started.elapsed()))
}

async fn wait_counted(host: &TestHost, id: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = host.status(id).await.body;
        if status["customStatus"].as_u64() == Some(count) {
            return;
        }
        assert!(Instant::now() < deadline, "stuck at {status}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    quantile(&mut samples, 0.5)
}

fn report(case: &str, mut samples: Vec<f64>) {
    let (p50, max) = (quantile(&mut samples, 0.5), quantile(&mut samples, 1.0));
    println!("| {case} | {p50:.2} | {max:.2} |");
}
