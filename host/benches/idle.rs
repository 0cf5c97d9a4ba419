//! Memory with many idle instances (scenario S4 of the performance issue):
//! 100,000 counters started over HTTP, each waiting for an event; the
//! host's resident memory once all are Running. Baseline, same run: the
//! host's resident memory with the same components loaded and no instance.
//!
//! Waiting instances cost the host nothing but rows in SQLite: only the
//! `--warm-executions` most recently used executions stay in memory.
//!
//! Run with `cargo bench -p reprise-host --bench idle`.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use support::from_clients;
use support::harness::{TestHost, components};

const INSTANCES: usize = 100_000;

fn main() {
    support::run(async {
        let host = TestHost::start_with(&[&components().counter]).await;
        let before = resident_mib(&host);

        let started = Instant::now();
        let urls = (0..INSTANCES)
            .map(|n| format!("{}/orchestrators/E3_Counter/idle-{n}", host.base))
            .collect();
        from_clients(urls, "").await;
        // Every instance has run its first episode and waits for an event.
        loop {
            let pending = host
                .get("/instances?runtimeStatus=Pending&top=1&showInput=false")
                .await
                .body;
            if pending.as_array().is_some_and(Vec::is_empty) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed();
        let running = resident_mib(&host);
        host.kill_now();

        println!("\nS4: {INSTANCES} idle instances waiting for events\n");
        println!("| case | host resident memory | target |");
        println!("|---|---|---|");
        println!("| baseline: components loaded, no instance | {before:.0} MiB | |");
        println!(
            "| {INSTANCES} counters Running, waiting (started in {took:.0?}) | {running:.0} MiB | ≤ 1 GB |"
        );
    });
}

/// The host process's resident set (`VmRSS`), in MiB.
fn resident_mib(host: &TestHost) -> f64 {
    let pid = host.pid().expect("the host runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}
