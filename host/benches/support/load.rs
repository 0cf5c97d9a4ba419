//! Load over one host or several (round robin, as a load balancer would),
//! until the work is done: rates, and the CPU each party spent on it.

use std::time::{Duration, Instant};

use super::harness::TestHost;
use super::{CpuMeter, from_clients, quantile};

/// Runs of each measurement; the median is reported.
pub const RUNS: usize = 3;

/// A measured rate, with the CPU spent per item by the hosts and, if
/// given, by other processes (a database server and its backends).
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub per_second: f64,
    pub host_cpu_micros: f64,
    pub other_cpu_micros: f64,
}

/// The CPU meters of one measurement: every host, and `others`.
pub struct Meters {
    hosts: CpuMeter,
    others: CpuMeter,
}

impl Meters {
    pub fn start(hosts: &[TestHost], others: &[u32]) -> Meters {
        Meters {
            hosts: CpuMeter::processes(hosts.iter().filter_map(TestHost::pid).collect()),
            others: CpuMeter::processes(others.to_vec()),
        }
    }

    fn measured(&self, items: usize, elapsed: Duration) -> Measured {
        Measured {
            per_second: items as f64 / elapsed.as_secs_f64(),
            host_cpu_micros: self.hosts.micros_per(items).unwrap_or(f64::NAN),
            other_cpu_micros: self.others.micros_per(items).unwrap_or(f64::NAN),
        }
    }
}

/// The URL `path` on the `n`th request's host, round robin.
fn spread(hosts: &[TestHost], n: usize, path: &str) -> String {
    format!("{}{path}", hosts[n % hosts.len()].base)
}

/// How a load balancer in front of several hosts picks one for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancer {
    /// Request after request, whatever the instance.
    RoundRobin,
    /// Always the same host for the same instance (a balancer hashing the
    /// instance ID): the host that started it, which runs it.
    ByInstance,
    /// As `ByInstance`, but each counter started on the next host, so it
    /// first runs where its events do not arrive (as after a takeover,
    /// while its host was down), until it is handed over.
    ByInstanceMoved,
}

impl Balancer {
    /// The URL `path` for the `n`th request, an event to counter `counter`
    /// (started on `spread`'s host for request `counter`).
    fn route(self, hosts: &[TestHost], n: usize, counter: usize, path: &str) -> String {
        match self {
            Balancer::RoundRobin => spread(hosts, n, path),
            Balancer::ByInstance | Balancer::ByInstanceMoved => spread(hosts, counter, path),
        }
    }

    /// The URL `path` on the host that starts counter `counter`.
    fn start(self, hosts: &[TestHost], counter: usize, path: &str) -> String {
        match self {
            Balancer::ByInstanceMoved => spread(hosts, counter + 1, path),
            Balancer::RoundRobin | Balancer::ByInstance => spread(hosts, counter, path),
        }
    }
}

/// Events to counters: which counters (`{tag}-N`, `count` of them), and
/// how the requests are spread over the hosts.
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    pub of: Counters,
    pub tag: &'a str,
    pub count: usize,
    pub balancer: Balancer,
}

/// Starts `starts` instances of `name` under IDs beginning with `prefix`
/// from the load clients, spread over `hosts`, and waits until all have
/// Completed (none Failed).
pub async fn complete(
    hosts: &[TestHost],
    others: &[u32],
    prefix: &str,
    name: &str,
    input: &str,
    starts: usize,
) -> Measured {
    let started = Instant::now();
    let meters = Meters::start(hosts, others);
    let urls: Vec<String> = (0..starts)
        .map(|n| spread(hosts, n, &format!("/orchestrators/{name}/{prefix}{n}")))
        .collect();
    from_clients(urls, input).await;
    let host = &hosts[0];
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
    meters.measured(starts, started.elapsed())
}

/// [`complete`], `RUNS` times.
pub async fn complete_runs(
    hosts: &[TestHost],
    others: &[u32],
    tag: &str,
    name: &str,
    input: &str,
    starts: usize,
) -> Vec<Measured> {
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let prefix = format!("{tag}r{run}-");
        let measured = complete(hosts, others, &prefix, name, input, starts).await;
        eprintln!("{tag} run {run}: {measured:?}");
        runs.push(measured);
    }
    runs
}

/// Waits until the instance query `filter` matches nothing (a cheap query,
/// so polling does not compete with the host for the CPU).
pub async fn wait_until_none(host: &TestHost, filter: &str) {
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

/// Starts `counters` counters named `{tag}-N`, spread over `hosts`.
pub async fn start_counters(hosts: &[TestHost], balancer: Balancer, tag: &str, counters: usize) {
    let urls: Vec<String> = (0..counters)
        .map(|n| balancer.start(hosts, n, &format!("/orchestrators/E3_Counter/{tag}-{n}")))
        .collect();
    from_clients(urls, "0").await;
    wait_until_none(
        &hosts[0],
        &format!("runtimeStatus=Pending&instanceIdPrefix={tag}-"),
    )
    .await;
}

/// What counts: E3_Counter orchestrations (events raised to them), or
/// Counter entities (signals sent to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counters {
    Orchestrations,
    Entities,
}

impl Counters {
    /// Where the `incr` for counter `{tag}-{n}` goes, and with what body.
    fn incr(self, tag: &str, n: usize) -> (String, &'static str) {
        match self {
            Counters::Orchestrations => (
                format!("/instances/{tag}-{n}/raiseEvent/operation"),
                "\"incr\"",
            ),
            Counters::Entities => (format!("/entities/Counter/{tag}-{n}?op=incr"), ""),
        }
    }

    /// Every counter's count, read from `host`.
    async fn counts(self, host: &TestHost, tag: &str, counters: usize) -> Vec<u64> {
        let (path, count) = match self {
            Counters::Orchestrations => (
                format!("/instances?instanceIdPrefix={tag}-&top={counters}"),
                "/input",
            ),
            Counters::Entities => (
                format!("/entities/Counter?fetchState=true&top={counters}"),
                "/state",
            ),
        };
        let page = host.get(&path).await.body;
        page.as_array()
            .unwrap()
            .iter()
            .map(|item| item.pointer(count).and_then(|v| v.as_u64()).unwrap_or(0))
            .collect()
    }
}

/// Sends `events` `incr`s spread over the counters and over `hosts`, until
/// every count is `expected` (checking none counts one twice).
pub async fn count_events(
    hosts: &[TestHost],
    others: &[u32],
    to: Events<'_>,
    events: usize,
    expected: u64,
) -> Measured {
    let (tag, counters) = (to.tag, to.count);
    let started = Instant::now();
    let meters = Meters::start(hosts, others);
    let incrs: Vec<(String, &str)> = (0..events).map(|n| to.of.incr(tag, n % counters)).collect();
    let body = incrs[0].1;
    let urls: Vec<String> = incrs
        .into_iter()
        .enumerate()
        .map(|(n, (path, _))| to.balancer.route(hosts, n, n % counters, &path))
        .collect();
    from_clients(urls, body).await;
    loop {
        let counts = to.of.counts(&hosts[0], tag, counters).await;
        assert_eq!(counts.len(), counters);
        assert!(
            counts.iter().all(|&count| count <= expected),
            "a counter counted an event twice"
        );
        if counts.iter().all(|&count| count == expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    meters.measured(events, started.elapsed())
}

/// "median per second (runs: each)".
pub fn summary(runs: &[Measured]) -> String {
    let mut rates: Vec<f64> = runs.iter().map(|run| run.per_second).collect();
    let all: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
    format!(
        "{:.0} per second (runs: {})",
        quantile(&mut rates, 0.5),
        all.join(", ")
    )
}

/// The median of `value` over `runs`.
pub fn median(runs: &[Measured], value: impl Fn(&Measured) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(value).collect();
    quantile(&mut values, 0.5)
}
