//! What the benches share: the integration-test harness (a real `reprise`
//! process on loopback), a runtime to drive it, and sample summaries.

#[path = "../../../tests/integration/harness.rs"]
pub mod harness;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Runs a bench on a multi-threaded runtime, like the integration tests.
pub fn run(bench: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(bench);
}

pub fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// The `quantile` (0 to 1) of `samples`, nearest rank; sorts them.
pub fn quantile(samples: &mut [f64], quantile: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * quantile).round() as usize]
}

/// Prints the table row `| case | n | q1 | q2 ... |` of `samples`, each
/// quantile in `quantiles` (0 to 1) with one decimal.
pub fn quantile_row(case: &str, mut samples: Vec<f64>, quantiles: &[f64]) {
    let values: Vec<String> = quantiles
        .iter()
        .map(|&q| format!("{:.1}", quantile(&mut samples, q)))
        .collect();
    println!("| {case} | {} | {} |", samples.len(), values.join(" | "));
}

/// The CPU time a process uses from now on.
pub struct CpuMeter {
    pid: Option<u32>,
    start: f64,
}

impl CpuMeter {
    /// Starts measuring `pid` (`None`: measures nothing).
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            start: pid.map_or(0.0, cpu_seconds),
        }
    }

    /// CPU time since the start, in microseconds per one of `items`.
    pub fn micros_per(&self, items: usize) -> Option<f64> {
        let pid = self.pid?;
        Some((cpu_seconds(pid) - self.start) / items as f64 * 1e6)
    }
}

/// CPU time (user and system) the process `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses; utime and
    // stime are the 14th and 15th fields, in clock ticks (100 per second).
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    ticks(14).unwrap_or(0.0) / 100.0 + ticks(15).unwrap_or(0.0) / 100.0
}

/// Concurrent clients of the load generator.
pub const CLIENTS: usize = 32;

/// POSTs `body` to every URL in `urls` from `CLIENTS` concurrent clients,
/// each expecting 202.
pub async fn from_clients(urls: Vec<String>, body: &str) {
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let clients = (0..CLIENTS).map(|_| {
        let (urls, next, body) = (Arc::clone(&urls), Arc::clone(&next), body.to_owned());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(url) = urls.get(n) else { break };
                let reply = client.post(url).body(body.clone()).send().await.unwrap();
                assert_eq!(reply.status(), reqwest::StatusCode::ACCEPTED, "{url}");
                // Read to the end, or the connection is closed, not reused.
                reply.bytes().await.unwrap();
            }
        })
    });
    for client in futures::future::join_all(clients).await {
        client.unwrap();
    }
}
