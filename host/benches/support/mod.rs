//! What the benches share: the integration-test harness (a real `reprise`
//! process on loopback), a runtime to drive it, and sample summaries.

#[path = "../../../tests/integration/harness.rs"]
pub mod harness;
pub mod load;

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

/// Whether the bench's command line asks for scenario `tag`: every one
/// when it names none (`cargo bench --bench X -- s1 s5` runs only those).
pub fn wanted(tag: &str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    named.is_empty() || named.iter().any(|arg| arg == tag)
}

/// [`wanted`] for one of a group of tags: `tag` unless the command line
/// names another of `group` and not `tag` (`-- s1 pg3`: scenario S1, on
/// setup `pg3` only).
pub fn wanted_among(tag: &str, group: &[&str]) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| group.contains(&arg.as_str()))
        .collect();
    named.is_empty() || named.iter().any(|arg| arg == tag)
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

/// The CPU time some processes use from now on.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: f64,
}

impl CpuMeter {
    /// Starts measuring `pid` (`None`: measures nothing).
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter::processes(pid.into_iter().collect())
    }

    /// Starts measuring `pids` and their children (a database server's
    /// backends), together.
    pub fn processes(pids: Vec<u32>) -> CpuMeter {
        let start = cpu_seconds_of(&pids);
        CpuMeter { pids, start }
    }

    /// CPU time since the start, in microseconds per one of `items`.
    pub fn micros_per(&self, items: usize) -> Option<f64> {
        if self.pids.is_empty() {
            return None;
        }
        Some((cpu_seconds_of(&self.pids) - self.start) / items as f64 * 1e6)
    }
}

/// CPU time `pids`, their live children and their reaped children have
/// used so far, in seconds.
fn cpu_seconds_of(pids: &[u32]) -> f64 {
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid).is_some_and(|parent| pids.contains(&parent)));
    let reaped: f64 = pids.iter().map(|&pid| stat_seconds(pid, &[16, 17])).sum();
    pids.iter()
        .copied()
        .chain(children)
        .map(cpu_seconds)
        .sum::<f64>()
        + reaped
}

/// The parent of process `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid).get(1)?.parse().ok()
}

/// The fields of `/proc/PID/stat` after the command name (which is in
/// parentheses), from the state (field 3) on.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().map(str::to_owned).collect()
}

/// The sum of the clock-tick fields `fields` (numbered as in `man 5
/// proc`) of process `pid`, in seconds (100 ticks per second).
fn stat_seconds(pid: u32, fields: &[usize]) -> f64 {
    let stat = stat_fields(pid);
    fields
        .iter()
        .filter_map(|&n| stat.get(n - 3)?.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}

/// CPU time (user and system) the process `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    stat_seconds(pid, &[14, 15])
}

/// Concurrent clients of the load generator: 32, or
/// `REPRISE_BENCH_CLIENTS`.
pub fn clients() -> usize {
    std::env::var("REPRISE_BENCH_CLIENTS")
        .ok()
        .and_then(|clients| clients.parse().ok())
        .unwrap_or(32)
}

/// POSTs `body` to every URL in `urls` from [`clients`] concurrent
/// clients, each expecting 202.
pub async fn from_clients(urls: Vec<String>, body: &str) {
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let clients = (0..clients()).map(|_| {
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
