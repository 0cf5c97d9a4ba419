//! PostgreSQL against SQLite in the same run: S1 (trivial starts), S2
//! (events to counters) and S7 (one activity) on SQLite, on PostgreSQL with
//! one host, and on PostgreSQL with three hosts on one database (requests
//! spread round robin); for each, the hosts' CPU and PostgreSQL's CPU (the
//! server and its backends) per item, and the statements and transactions
//! each item costs the database (`pg_stat_statements`, `pg_stat_database`).
//! One setup runs at a time: the hosts of the one before are stopped and
//! its database dropped first. Each setup first does a little unmeasured
//! work (a warm-up), so fresh hosts and a fresh database are compared at
//! their pace, not at their start. Then failover: the host that runs a counter is SIGKILLed, and an event
//! accepted by another host is timed until it is applied.
//!
//! PostgreSQL is the tests' private server (`reprise-testing-postgres`),
//! on the same 2 cores as the hosts and the load.
//!
//! Run with `cargo bench -p reprise-host --bench postgres`; name scenarios
//! after `--` (`-- s1 failover`) to run only those, and setups (`sqlite`,
//! `pg1`, `pg3`, `pg3id`, `pg3moved`) to run only on those (`-- s1 pg3`).
//! `pg3id` is three hosts behind a balancer that sends each instance's
//! requests to one host (hashing the instance ID), measured for S2 only:
//! for starts it is `pg3` again. `pg3moved` is `pg3id` with each counter
//! started on another host than the one its events go to, as after a
//! takeover: until the host they arrive at has it handed over.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use support::harness::{TestHost, components, postgres};
use support::load::{self, Balancer, Counters, Events, Measured, RUNS};

const STARTS: usize = 5_000;
const COUNTERS: usize = 1_000;
const EVENTS: usize = 20_000;
/// Work done before measuring, on each setup: a fresh host's first
/// thousand items run slower (caches, pools, a fresh database's first
/// pages), whatever the setup, and would only add noise.
const WARM_UP_STARTS: usize = 1_000;
const WARM_UP_EVENTS: usize = 2 * COUNTERS;

const SCENARIOS: [&str; 4] = ["s1", "s7", "s2", "failover"];
const SETUPS: [&str; 5] = ["sqlite", "pg1", "pg3", "pg3id", "pg3moved"];

fn wanted_scenario(tag: &str) -> bool {
    support::wanted_among(tag, &SCENARIOS)
}

fn wanted_setup(tag: &str) -> bool {
    support::wanted_among(tag, &SETUPS)
}

/// Hosts under test, and the processes whose CPU counts as the database's.
struct Setup {
    tag: &'static str,
    label: &'static str,
    hosts: Vec<TestHost>,
    database: Vec<u32>,
    balancer: Balancer,
}

fn main() {
    support::run(async {
        let mut rows = Vec::new();
        let mut several = None;
        // One setup at a time: the hosts of the one before are stopped and
        // its database dropped, so neither they nor autovacuum cleaning up
        // after them take the cores from the one measured.
        for tag in SETUPS.into_iter().filter(|tag| wanted_setup(tag)) {
            if let Some(previous) = several.take() {
                Setup::retire(previous);
            }
            let setup = Setup::start(tag).await;
            measure(&setup, &mut rows).await;
            if setup.hosts.len() > 1 {
                several = Some(setup);
            } else {
                setup.retire();
            }
        }
        println!("\nPostgreSQL and SQLite, median of {RUNS} runs\n");
        println!(
            "| scenario | setup | completed | host CPU per item | PostgreSQL CPU per item | statements per item | transactions per item |"
        );
        println!("|---|---|---|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
        if let Some(several) = several.filter(|_| wanted_scenario("failover")) {
            failover(several.hosts).await;
        }
    });
}

impl Setup {
    async fn start(tag: &'static str) -> Setup {
        let (label, hosts, database, balancer) = match tag {
            "sqlite" => (
                "SQLite, 1 host",
                vec![prepare().started().await],
                Vec::new(),
                Balancer::RoundRobin,
            ),
            "pg1" => (
                "PostgreSQL, 1 host",
                vec![prepare().on_postgres().started().await],
                vec![postgres().pid()],
                Balancer::RoundRobin,
            ),
            "pg3" => (
                "PostgreSQL, 3 hosts",
                several(3).await,
                vec![postgres().pid()],
                Balancer::RoundRobin,
            ),
            "pg3id" => (
                "PostgreSQL, 3 hosts, balanced by instance",
                several(3).await,
                vec![postgres().pid()],
                Balancer::ByInstance,
            ),
            _ => (
                "PostgreSQL, 3 hosts, balanced by instance, each started elsewhere",
                several(3).await,
                vec![postgres().pid()],
                Balancer::ByInstanceMoved,
            ),
        };
        Setup {
            tag,
            label,
            hosts,
            database,
            balancer,
        }
    }

    /// Stops the hosts and drops their database.
    fn retire(self) {
        let url = self.hosts[0].database_url().map(str::to_owned);
        drop(self.hosts);
        if let Some(url) = url {
            postgres().drop_database(&url).unwrap();
        }
    }
}

/// Runs the wanted scenarios on `setup`, a row each.
async fn measure(setup: &Setup, rows: &mut Vec<String>) {
    let tag = |scenario: &str| format!("{scenario}{}", setup.tag);
    // A balancer by instance spreads new instances' starts as round robin
    // does: for S1 and S7 it is `pg3` again.
    let with_starts = setup.balancer == Balancer::RoundRobin;
    if wanted_scenario("s1") && with_starts {
        let runs = starts(setup, &tag("s1"), "StartupProbe_0000", "").await;
        rows.push(row("S1: trivial starts", setup, &runs));
    }
    if wanted_scenario("s7") && with_starts {
        let input = r#"{"activity":"Echo","input":1}"#;
        let runs = starts(setup, &tag("s7"), "CallActivity", input).await;
        rows.push(row("S7: one activity", setup, &runs));
    }
    if wanted_scenario("s2") {
        rows.push(row(
            "S2: counter events",
            setup,
            &events(setup, &tag("s2")).await,
        ));
    }
}

/// S2: `RUNS` runs of `EVENTS` events spread over `COUNTERS` counters.
async fn events(setup: &Setup, counters: &str) -> Counts {
    load::start_counters(&setup.hosts, setup.balancer, counters, COUNTERS).await;
    let to = Events {
        of: Counters::Orchestrations,
        tag: counters,
        count: COUNTERS,
        balancer: setup.balancer,
    };
    let count =
        |events, expected| load::count_events(&setup.hosts, &setup.database, to, events, expected);
    let warm_up = count(WARM_UP_EVENTS, (WARM_UP_EVENTS / COUNTERS) as u64).await;
    eprintln!("{counters} warm-up: {warm_up:?}");
    let counted = Counted::start(setup);
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let expected = ((WARM_UP_EVENTS + (run + 1) * EVENTS) / COUNTERS) as u64;
        let measured = count(EVENTS, expected).await;
        eprintln!("{counters} run {run}: {measured:?}");
        runs.push(measured);
    }
    if let Some(count) = handed_over(&setup.hosts).await {
        eprintln!("{counters}: instances handed over between hosts: {count}");
    }
    (runs, counted.per(RUNS * EVENTS))
}

/// `reprise_instances_handed_over_total`, summed over `hosts` (`None` from
/// an older host binary, which does not count them).
async fn handed_over(hosts: &[TestHost]) -> Option<f64> {
    let mut total = 0.0;
    for host in hosts {
        total += host.metric("reprise_instances_handed_over_total").await?;
    }
    Some(total)
}

/// `RUNS` runs of `STARTS` instances of `name` until all Completed, with
/// the statements and transactions they cost the database.
async fn starts(setup: &Setup, tag: &str, name: &str, input: &str) -> Counts {
    let warm_up = format!("{tag}w-");
    let (hosts, database) = (&setup.hosts, &setup.database);
    let measured = load::complete(hosts, database, &warm_up, name, input, WARM_UP_STARTS).await;
    eprintln!("{tag} warm-up: {measured:?}");
    let counted = Counted::start(setup);
    let runs = load::complete_runs(&setup.hosts, &setup.database, tag, name, input, STARTS).await;
    (runs, counted.per(RUNS * STARTS))
}

/// Runs, and statements and transactions per item.
type Counts = (Vec<Measured>, Option<(f64, f64)>);

fn prepare() -> TestHost {
    let c = components();
    TestHost::prepare(&[&c.startup_probe, &c.misbehaving, &c.counter])
}

/// `count` hosts on one fresh PostgreSQL database.
async fn several(count: usize) -> Vec<TestHost> {
    let first = prepare().on_postgres().started().await;
    let mut hosts = vec![];
    for _ in 1..count {
        hosts.push(prepare().sharing_database_with(&first).started().await);
    }
    hosts.insert(0, first);
    hosts
}

fn row(scenario: &str, setup: &Setup, (runs, counted): &Counts) -> String {
    let host_cpu = load::median(runs, |run| run.host_cpu_micros);
    let database_cpu = match setup.database.is_empty() {
        true => "(in the host)".to_owned(),
        false => format!("{:.0} µs", load::median(runs, |run| run.other_cpu_micros)),
    };
    let (statements, transactions) = match counted {
        Some((statements, transactions)) => {
            (format!("{statements:.1}"), format!("{transactions:.1}"))
        }
        None => ("".to_owned(), "".to_owned()),
    };
    format!(
        "| {scenario} | {} | {} | {host_cpu:.0} µs | {database_cpu} | {statements} | {transactions} |",
        setup.label,
        load::summary(runs)
    )
}

/// Statements and transactions a PostgreSQL database has run, from a start.
struct Counted {
    url: Option<String>,
    start: (f64, f64),
}

impl Counted {
    fn start(setup: &Setup) -> Counted {
        let url = setup.hosts[0].database_url().map(str::to_owned);
        if let Some(url) = &url {
            postgres()
                .query(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .expect("pg_stat_statements is loaded (Debian's postgresql has it)");
            if std::env::var_os("REPRISE_BENCH_STATEMENTS").is_some() {
                postgres()
                    .query(url, "SELECT pg_stat_statements_reset()")
                    .unwrap();
            }
        }
        let start = url.as_deref().map_or((0.0, 0.0), totals);
        Counted { url, start }
    }

    /// Statements and transactions per one of `items`, since the start.
    fn per(&self, items: usize) -> Option<(f64, f64)> {
        let url = self.url.as_deref()?;
        if std::env::var_os("REPRISE_BENCH_STATEMENTS").is_some() {
            print_statements(url);
        }
        let (statements, transactions) = totals(url);
        Some((
            (statements - self.start.0) / items as f64,
            (transactions - self.start.1) / items as f64,
        ))
    }
}

/// The most called statements since the scenario's start, with their time (set
/// `REPRISE_BENCH_STATEMENTS` to see where the database's time goes).
fn print_statements(url: &str) {
    let rows = postgres()
        .query(
            url,
            "SELECT calls || ' calls, ' || round(total_exec_time::numeric, 1) || ' ms, ' ||
                    round(shared_blks_hit::numeric / calls, 1) || ' blocks: ' ||
                    regexp_replace(left(query, 110), '\\s+', ' ', 'g')
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY calls DESC LIMIT 25",
        )
        .unwrap();
    eprintln!("statements so far:\n  {}", rows.join("\n  "));
}

fn totals(url: &str) -> (f64, f64) {
    let number = |sql: &str| -> f64 {
        postgres().query(url, sql).unwrap()[0]
            .parse()
            .unwrap_or(0.0)
    };
    (
        number(
            "SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ),
        number(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database
             WHERE datname = current_database()",
        ),
    )
}

/// Kills the host that runs a counter and times how long an event another
/// host accepted takes to be applied.
async fn failover(hosts: Vec<TestHost>) {
    let id = hosts[0]
        .start_instance("E3_Counter", Some("failover"), "0")
        .await;
    let reply = hosts[0].raise(&id, "operation", "\"incr\"").await;
    assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED);
    hosts[0]
        .wait_for(&id, Duration::from_secs(30), |body| body["input"] == 1)
        .await;
    hosts[0].kill_now();
    let killed = Instant::now();
    let reply = hosts[1].raise(&id, "operation", "\"incr\"").await;
    assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED);
    let accepted = killed.elapsed();
    hosts[1]
        .wait_for(&id, Duration::from_secs(60), |body| body["input"] == 2)
        .await;
    println!(
        "\nfailover: the event accepted {:.0} ms after the owner's SIGKILL was applied {:.1} s after the kill (lease 10 s, polled every 1 s)",
        accepted.as_secs_f64() * 1000.0,
        killed.elapsed().as_secs_f64()
    );
}
