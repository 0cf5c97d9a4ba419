//! A flooded instance costs what it consumes: N events queued for a
//! suspended eternal counter (`E3_Counter`, one event per generation, then
//! continue-as-new), then a resume; time and host CPU until all N are
//! applied. Baseline, same run: events raised one at a time to a counter
//! that keeps up (no flood), host CPU per event.
//!
//! Run with `cargo bench -p reprise-host --bench flood`;
//! `REPRISE_FLOOD_EVENTS` sets N (an older host, quadratic in it, needs
//! fewer to finish).

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::CpuMeter;
use support::harness::{TestHost, components};

fn flood_events() -> usize {
    std::env::var("REPRISE_FLOOD_EVENTS")
        .ok()
        .and_then(|events| events.parse().ok())
        .unwrap_or(20_000)
}

/// Events of the baseline, raised one at a time.
const ONE_BY_ONE: usize = 1_000;

fn main() {
    support::run(async {
        let c = components();
        let host = TestHost::start_with(&[&c.misbehaving, &c.counter]).await;

        host.start_instance("E3_Counter", Some("steady"), "0").await;
        host.wait_for_status("steady", "Running").await;
        let cpu = CpuMeter::start(host.pid());
        for _ in 0..ONE_BY_ONE {
            host.raise("steady", "operation", "\"incr\"").await;
        }
        wait_for_count(&host, "steady", ONE_BY_ONE).await;
        let steady_cpu = cpu.micros_per(ONE_BY_ONE).unwrap_or(f64::NAN);

        let n = flood_events();
        host.start_instance("E3_Counter", Some("flooded"), "0")
            .await;
        host.wait_for_status("flooded", "Running").await;
        host.post("/instances/flooded/suspend", "").await;
        host.wait_for_status("flooded", "Suspended").await;
        let send =
            json!({ "instanceId": "flooded", "name": "operation", "payload": "incr", "times": n });
        let sender = host.start_instance("Sender", None, &send.to_string()).await;
        host.wait_for_status(&sender, "Completed").await;
        let queued = "SELECT CAST(COUNT(*) AS TEXT) FROM inbox WHERE instance_id = 'flooded'";
        host.wait_until("the flood queued", Duration::from_secs(600), async || {
            let rows = host.database_rows(queued);
            (rows.first().map(String::as_str) == Some(&*n.to_string()))
                .then_some(())
                .ok_or(format!("{rows:?}"))
        })
        .await;

        let cpu = CpuMeter::start(host.pid());
        let started = Instant::now();
        host.post("/instances/flooded/resume", "").await;
        wait_for_count(&host, "flooded", n).await;
        let elapsed = started.elapsed().as_secs_f64();
        let flood_cpu = cpu.micros_per(n).unwrap_or(f64::NAN);

        println!("\nan eternal counter's events (continue-as-new per event)\n");
        println!("| case | events | time | host CPU per event |");
        println!("|---|---|---|---|");
        println!("| raised one at a time (baseline) | {ONE_BY_ONE} | | {steady_cpu:.0} µs |");
        println!(
            "| flood: queued while suspended, then resumed | {n} | {elapsed:.1} s | {flood_cpu:.0} µs |"
        );
    });
}

async fn wait_for_count(host: &TestHost, id: &str, count: usize) {
    host.wait_for(id, Duration::from_secs(3600), |body| body["input"] == count)
        .await;
}
