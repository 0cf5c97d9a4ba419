//! One instance's storm must not stall another: an orchestrator that sends
//! 100,000 events in one step, to an instance that consumes them,
//! next to a victim counter whose event round trip (raise "incr", see the
//! count go up) is measured. Baseline, in the same run: the victim's round
//! trip with no storm.
//!
//! Run with `cargo bench -p reprise-host --bench storm`.

#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::harness::{TestHost, components};
use support::{ms, quantile_row};

/// Events the storm sends in one step, unless `REPRISE_STORM_EVENTS` says
/// otherwise (an older host, quadratic in them, needs fewer to finish).
fn storm_events() -> u32 {
    std::env::var("REPRISE_STORM_EVENTS")
        .ok()
        .and_then(|events| events.parse().ok())
        .unwrap_or(100_000)
}
/// Victim round trips measured without a storm.
const ROUND_TRIPS: usize = 200;
/// Storms run one after another while the victim is measured throughout.
const STORMS: usize = 3;

fn main() {
    support::run(async {
        let c = components();
        let host = Arc::new(TestHost::start_with(&[&c.misbehaving, &c.counter]).await);
        host.start_instance("Accumulates", Some("sink"), "").await;
        host.start_instance("E3_Counter", Some("victim"), "0").await;
        host.wait_for_status("victim", "Running").await;

        let mut count = 0;
        let quiet = round_trips(&host, &mut count, |done| done < ROUND_TRIPS).await;

        let storming = Arc::new(AtomicBool::new(true));
        let storms = tokio::spawn(storm(Arc::clone(&host), Arc::clone(&storming)));
        let stormy = round_trips(&host, &mut count, |_| storming.load(Ordering::Relaxed)).await;
        let elapsed = storms.await.unwrap();

        println!("\nvictim event round trip (raise \"incr\", see the count), ms\n");
        println!("| case | n | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        quantile_row("no storm (baseline)", quiet, &[0.5, 0.99, 1.0]);
        quantile_row(
            &format!(
                "during {STORMS} storms of {} sent events ({:.1} s each)",
                storm_events(),
                elapsed.as_secs_f64() / STORMS as f64
            ),
            stormy,
            &[0.5, 0.99, 1.0],
        );
    });
}

/// `STORMS` storms one after another; then clears `storming`. Their time.
async fn storm(host: Arc<TestHost>, storming: Arc<AtomicBool>) -> Duration {
    let started = Instant::now();
    for _ in 0..STORMS {
        let send =
            json!({ "instanceId": "sink", "name": "item", "payload": 1, "times": storm_events() });
        let id = host.start_instance("Sender", None, &send.to_string()).await;
        host.wait_for(&id, Duration::from_secs(600), |body| {
            body["runtimeStatus"] == "Completed"
        })
        .await;
    }
    storming.store(false, Ordering::Relaxed);
    started.elapsed()
}

/// Victim round trips while `more(done so far)`; `count` is the victim's
/// count so far.
async fn round_trips(host: &TestHost, count: &mut i64, more: impl Fn(usize) -> bool) -> Vec<f64> {
    let mut samples = Vec::new();
    while more(samples.len()) {
        let started = Instant::now();
        host.raise("victim", "operation", "\"incr\"").await;
        *count += 1;
        let expected = *count;
        // Polled every millisecond: the harness's 20 ms would hide the
        // round trip (about a millisecond without a storm).
        while host.status("victim").await.body["input"] != expected {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the victim stalled"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(ms(started.elapsed()));
    }
    samples
}
