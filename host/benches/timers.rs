//! Timer latency: how late a durable timer resumes its orchestrator after
//! its due time, measured on the real `reprise` binary over HTTP.
//!
//! For each timer the host records when it was due (`FireAt`) and when the
//! orchestrator saw it fire (the `TimerFired` episode's `Timestamp`); the
//! difference is the latency. Baseline, in the same run: how late a plain
//! `tokio::time::sleep` of the same length wakes up in this process, the
//! floor under any timer.
//!
//! Run with `cargo bench -p reprise-host --bench timers`.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::harness::{TestHost, components};
use support::{ms, quantile_row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long each timer waits.
const SLEEP: Duration = Duration::from_millis(200);
/// Timers measured one after another (no load).
const SEQUENTIAL: usize = 20;
/// Instances started back to back, their timers coming due while others
/// are still starting: timers under load.
const BURST: usize = 100;

fn main() {
    support::run(async {
        let baseline = tokio_sleep_overshoot().await;
        let host = TestHost::start_with(&[&components().misbehaving]).await;
        let sequential = timer_latencies(&host, 1, SEQUENTIAL).await;
        let burst = timer_latencies(&host, BURST, 1).await;

        println!("\ntimer latency: fired minus due, {SLEEP:?} timers\n");
        println!("| case | n | p50 ms | p95 ms | max ms |");
        println!("|---|---|---|---|---|");
        quantile_row(
            "baseline: tokio::time::sleep in-process",
            baseline,
            &[0.5, 0.95, 1.0],
        );
        quantile_row(
            "durable timer, one at a time",
            sequential,
            &[0.5, 0.95, 1.0],
        );
        quantile_row(
            &format!("durable timers, {BURST} started back to back"),
            burst,
            &[0.5, 0.95, 1.0],
        );
    });
}

async fn tokio_sleep_overshoot() -> Vec<f64> {
    let mut samples = Vec::new();
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        tokio::time::sleep(SLEEP).await;
        samples.push(ms(started.elapsed() - SLEEP));
    }
    samples
}

/// Runs `rounds` rounds of `at_once` sleeping instances each; returns the
/// latency of every timer in milliseconds.
async fn timer_latencies(host: &TestHost, at_once: usize, rounds: usize) -> Vec<f64> {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let mut ids = Vec::new();
        for _ in 0..at_once {
            let ms = SLEEP.as_millis().to_string();
            ids.push(host.start_instance("Sleeps", None, &ms).await);
        }
        for id in ids {
            host.wait_for(&id, Duration::from_secs(60), |body| {
                body["runtimeStatus"] == "Completed"
            })
            .await;
            let history = host
                .get(&format!("/instances/{id}?showHistory=true"))
                .await
                .body;
            samples.push(fired_late_ms(&history));
        }
    }
    samples
}

fn fired_late_ms(history: &Value) -> f64 {
    let fired = history["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["EventType"] == "TimerFired")
        .expect("the timer fired");
    let time =
        |field: &str| OffsetDateTime::parse(fired[field].as_str().unwrap(), &Rfc3339).unwrap();
    (time("Timestamp") - time("FireAt")).as_seconds_f64() * 1000.0
}
