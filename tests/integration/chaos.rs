//! Chaos: a mixed workload runs while the host is SIGKILLed and restarted
//! at random instants, then every promise a 202 made is checked.
//!
//! Seeded: the seed comes from `REPRISE_CHAOS_SEED`, else from the clock, is
//! printed at the start and is part of every assertion message. It fixes
//! the kill schedule and the workload's choices (not the exact interleaving
//! of requests and kills, which the scheduler decides).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client_log::ClientLog;
use crate::harness::{TestHost, components, fixed_port, postgres};

/// Counters (E3_Counter, continue-as-new per event) fed bursts of "incr".
const COUNTERS: usize = 3;
/// Concurrent starters of short orchestrations.
const STARTERS: usize = 2;
/// Requests each event sender keeps in flight.
const IN_FLIGHT: usize = 4;

/// SplitMix64: tiny, seedable, good enough to pick instants and inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for worker `index`, derived from the seed.
    fn fork(seed: u64, index: u64) -> Rng {
        let mut rng = Rng::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    /// The host answered with this status and body.
    Answered(StatusCode, Value),
    /// No connection: the host was down, the request never reached it.
    Refused,
    /// Cut off by a kill after it was sent: it may or may not have been
    /// committed.
    CutOff,
}

impl Sent {
    fn accepted(&self) -> bool {
        matches!(self, Sent::Answered(StatusCode::ACCEPTED, _))
    }
}

/// Shared progress counters, read by the killer.
#[derive(Default)]
struct Tally {
    in_flight: AtomicU64,
    accepted_events: AtomicU64,
    accepted_starts: AtomicU64,
    refused: AtomicU64,
    cut_off: AtomicU64,
    /// The slowest request so far: how long, what, and how it ended.
    slowest: std::sync::Mutex<(Duration, String, String)>,
    /// Requests sent so far, each numbered in the client's log.
    sent: AtomicU64,
    /// Whether the database's sessions were printed (after a hang).
    sessions_printed: AtomicBool,
}

impl Tally {
    /// Events and starts accepted so far.
    fn progress(&self) -> (u64, u64) {
        (
            self.accepted_events.load(Ordering::SeqCst),
            self.accepted_starts.load(Ordering::SeqCst),
        )
    }
}

/// Waits until `events` events and `starts` starts were accepted in all.
async fn wait_for_progress(host: &TestHost, tally: &Tally, what: &str, events: u64, starts: u64) {
    host.wait_until(what, Duration::from_secs(60), async || {
        let (e, s) = tally.progress();
        if e >= events && s >= starts {
            Ok(())
        } else {
            Err(format!("{e} events and {s} starts accepted"))
        }
    })
    .await
}

/// A client of its own (the harness's needs `&TestHost`, which the killer
/// holds mutably), on the host's base URL, which survives restarts because
/// the host listens on a fixed port.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    tally: Arc<Tally>,
    /// The host's PostgreSQL database, if it has one: what its sessions
    /// wait for is printed when a request hangs.
    database: Option<String>,
}

impl Api {
    async fn post(&self, path: &str, body: String) -> Sent {
        self.tally.in_flight.fetch_add(1, Ordering::SeqCst);
        let number = self.tally.sent.fetch_add(1, Ordering::SeqCst);
        let url = format!("{}{path}", self.base);
        tracing::debug!(target: "client", request = number, %url, "sending");
        let sent_at = Instant::now();
        let request = self.client.post(&url).body(body).send();
        let outcome = match request.await {
            Ok(response) => {
                // The status line arrived: a 202 was committed even if the
                // kill cuts off the rest of the body.
                let status = response.status();
                let body = response
                    .bytes()
                    .await
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or(Value::Null);
                Sent::Answered(status, body)
            }
            Err(error) if error.is_connect() => Sent::Refused,
            Err(error) => {
                if sent_at.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "chaos: POST {path} cut off after {:?}: {error:?}",
                        sent_at.elapsed()
                    );
                }
                if error.is_timeout() {
                    self.print_sockets();
                    self.print_database_sessions().await;
                    self.print_client_log(number);
                }
                Sent::CutOff
            }
        };
        tracing::debug!(target: "client", request = number, %url, "done: {outcome:?}");
        self.tally.in_flight.fetch_sub(1, Ordering::SeqCst);
        let took = sent_at.elapsed();
        {
            let mut slowest = self.tally.slowest.lock().unwrap();
            if took > slowest.0 {
                let ended = match &outcome {
                    Sent::Answered(status, _) => status.to_string(),
                    other => format!("{other:?}"),
                };
                *slowest = (took, path.to_owned(), ended);
            }
        }
        match &outcome {
            Sent::Refused => {
                self.tally.refused.fetch_add(1, Ordering::SeqCst);
                // The host is down: do not spin while it restarts.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Sent::CutOff => {
                self.tally.cut_off.fetch_add(1, Ordering::SeqCst);
            }
            Sent::Answered(..) => {}
        }
        outcome
    }

    fn port(&self) -> u16 {
        reqwest::Url::parse(&self.base)
            .ok()
            .and_then(|url| url.port())
            .unwrap_or_default()
    }

    /// What the client's connection pool did around request `number`
    /// (hung): the lines about the host's port, from 300 before its own
    /// on (1,000 at most).
    fn print_client_log(&self, number: u64) {
        let Some(log) = ClientLog::recording() else {
            return;
        };
        let lines = log.about_port(self.port());
        let mark = format!("request={number} ");
        let at = lines.iter().position(|line| line.contains(&mark));
        let from = at.map_or(0, |at| at.saturating_sub(300));
        let shown = &lines[from..lines.len().min(from + 1_000)];
        eprintln!(
            "chaos: the client's log around request {number}:\n{}",
            shown.join("\n")
        );
    }

    /// The TCP sockets on the host's port and who holds them (`ss`), as a
    /// request times out: a hang that outlives the host's kills is held by
    /// something else (every time: a hang is rare).
    fn print_sockets(&self) {
        let port = self.port();
        let filter = format!("( sport = :{port} or dport = :{port} )");
        let sockets = std::process::Command::new("ss")
            .args(["-tanpoi", &filter])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
        eprintln!("chaos: the sockets on port {port}: {sockets:#?}");
    }

    /// What each session of the host's database is doing and waiting for
    /// (once: the first hang tells the story).
    async fn print_database_sessions(&self) {
        let Some(url) = self.database.clone() else {
            return;
        };
        if self.tally.sessions_printed.swap(true, Ordering::SeqCst) {
            return;
        }
        let sql = "SELECT concat_ws(' | ', pid, state, wait_event_type, wait_event, \
                   now() - xact_start, left(query, 200)) \
                   FROM pg_stat_activity WHERE datname = current_database()";
        let sessions = tokio::task::spawn_blocking(move || postgres().query(&url, sql)).await;
        eprintln!("chaos: the database's sessions: {sessions:#?}");
    }
}

/// How the events sent to one instance fared.
#[derive(Debug, Default)]
struct Events {
    /// Payloads (or, for a counter, request numbers) answered 202.
    accepted: HashSet<u64>,
    /// Cut off by a kill: may or may not have been applied.
    cut_off: HashSet<u64>,
    /// Never reached the host, or refused by it (503): must not be applied.
    not_applied: HashSet<u64>,
    /// Answers other than 202 and 503: each is a failure.
    unexpected: Vec<(u64, StatusCode, Value)>,
}

/// Raises `event` on `id` with the payload `payload(n)` for n = 0, 1, ...
/// in bursts of 5 to 20, `IN_FLIGHT` at a time, until `stop`.
async fn send_bursts(
    api: Api,
    mut rng: Rng,
    id: String,
    event: &'static str,
    payload: fn(u64) -> String,
    stop: Arc<AtomicBool>,
) -> Events {
    let mut events = Events::default();
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let burst = rng.range(5, 20);
        let numbers = next..next + burst;
        next += burst;
        let path = format!("/instances/{id}/raiseEvent/{event}");
        let outcomes: Vec<(u64, Sent)> = futures::stream::iter(numbers)
            .map(|n| {
                let (api, path) = (&api, &path);
                async move { (n, api.post(path, payload(n)).await) }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (n, sent) in outcomes {
            match sent {
                Sent::Answered(StatusCode::ACCEPTED, _) => {
                    api.tally.accepted_events.fetch_add(1, Ordering::SeqCst);
                    events.accepted.insert(n);
                }
                Sent::Answered(StatusCode::SERVICE_UNAVAILABLE, _) | Sent::Refused => {
                    events.not_applied.insert(n);
                }
                Sent::CutOff => {
                    events.cut_off.insert(n);
                }
                Sent::Answered(status, body) => events.unexpected.push((n, status, body)),
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range(20, 100))).await;
    }
    events
}

/// One start request and what its instance must end with.
#[derive(Debug)]
struct Start {
    id: String,
    orchestrator: &'static str,
    input: Value,
    expected: Value,
    /// A sub-orchestration's ID and its expected output.
    child: Option<(String, Value)>,
    /// A phone verification: answered with its code once the chaos is over.
    verification: bool,
    sent: Sent,
}

fn hello_output() -> Value {
    json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
}

fn sum_of_squares(n: u64) -> u64 {
    n * (n + 1) * (2 * n + 1) / 6
}

/// A random start: activities in sequence, fan-out/fan-in, durable timers,
/// sub-orchestrations, or a timer raced against events.
fn pick_start(rng: &mut Rng, id: String) -> Start {
    let mut start = Start {
        id,
        orchestrator: "",
        input: Value::Null,
        expected: Value::Null,
        child: None,
        verification: false,
        sent: Sent::Refused,
    };
    match rng.range(0, 9) {
        0 | 1 => {
            start.orchestrator = "E1_HelloSequence";
            start.expected = hello_output();
        }
        2 | 3 => {
            let n = rng.range(1, 12);
            start.orchestrator = "FanOutFanIn";
            start.input = json!(n);
            start.expected = json!(sum_of_squares(n));
        }
        4 => {
            // Nobody answers: the durable timer decides.
            start.orchestrator = "Approval";
            start.input = json!({ "timeoutSeconds": 1 });
            start.expected = json!("timed out");
        }
        5 => {
            start.orchestrator = "Sleeps";
            start.input = json!(rng.range(100, 2000));
        }
        6 => {
            let n = rng.range(1, 8);
            start.orchestrator = "Parent";
            start.input = json!({ "orchestrator": "FanOutFanIn", "input": n });
            start.expected = json!({ "output": sum_of_squares(n) });
            start.child = Some((format!("{}:0:0", start.id), json!(sum_of_squares(n))));
        }
        7 => {
            start.orchestrator = "Parent";
            start.input = json!({ "orchestrator": "E1_HelloSequence" });
            start.expected = json!({ "output": hello_output() });
            start.child = Some((format!("{}:0:0", start.id), hello_output()));
        }
        _ => {
            // A wrong answer during the chaos, the right one after it;
            // the deadline is far enough never to decide.
            start.orchestrator = "E4_SmsPhoneVerification";
            start.input = json!({ "phone": "+15555550100", "timeoutSeconds": 600 });
            start.expected = json!(true);
            start.verification = true;
        }
    }
    start
}

/// Starts orchestrations under explicit IDs, one at a time, until `stop`.
async fn start_instances(
    api: Api,
    mut rng: Rng,
    worker: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Start> {
    let mut starts = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut start = pick_start(&mut rng, format!("chaos-start-{worker}-{n}"));
        n += 1;
        let path = format!("/orchestrators/{}/{}", start.orchestrator, start.id);
        start.sent = api.post(&path, start.input.to_string()).await;
        if start.sent.accepted() {
            api.tally.accepted_starts.fetch_add(1, Ordering::SeqCst);
            if start.verification {
                // Uses up one of three attempts, if it lands at all.
                let path = format!("/instances/{}/raiseEvent/SmsChallengeResponse", start.id);
                api.post(&path, "\"wrong\"".to_owned()).await;
            }
        }
        starts.push(start);
        tokio::time::sleep(Duration::from_millis(rng.range(20, 80))).await;
    }
    starts
}

fn chaos_seed() -> u64 {
    match std::env::var("REPRISE_CHAOS_SEED") {
        Ok(seed) => seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("REPRISE_CHAOS_SEED must be a u64, not {seed:?}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// Every instance whose ID starts with `prefix`, through every page.
async fn list(host: &TestHost, prefix: &str) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = format!("{}/instances?instanceIdPrefix={prefix}&top=1000", host.base);
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let reply = request.send().await.map_err(|error| error.to_string())?;
        if reply.status() != StatusCode::OK {
            return Err(format!("listing answered {}", reply.status()));
        }
        token = reply
            .headers()
            .get("x-ms-continuation-token")
            .map(|value| value.to_str().unwrap().to_owned());
        let page: Vec<Value> = reply.json().await.map_err(|error| error.to_string())?;
        all.extend(page);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// The challenge code a phone verification's activity sent, once recorded.
async fn challenge_code(host: &TestHost, id: &str, seed: u64) -> u64 {
    host.wait_until(
        &format!("the challenge code of {id} (seed {seed})"),
        Duration::from_secs(60),
        async || {
            let history = host
                .get(&format!(
                    "/instances/{id}?showHistory=true&showHistoryOutput=true"
                ))
                .await
                .body;
            history["historyEvents"]
                .as_array()
                .and_then(|events| {
                    events
                        .iter()
                        .find(|event| event["EventType"] == "TaskCompleted")
                })
                .and_then(|event| event["Result"].as_u64())
                .ok_or_else(|| history.to_string())
        },
    )
    .await
}

/// The host is SIGKILLed and restarted 3 to 5 times at random instants
/// while counters take bursts of events (continue-as-new), an event log
/// records numbered events, and starters launch activity sequences,
/// fan-out/fan-in, durable timers, sub-orchestrations and phone
/// verifications. Afterwards every 202'd event was applied exactly once,
/// every 202'd start exists and completed with the right output, and no
/// instance failed.
// `restart` blocks its thread while the host starts; the workload runs on
// the other threads meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_workload_survives_random_kills() {
    let began = Instant::now();
    // From now on, so a hang can show what the client did.
    ClientLog::recording();
    let seed = chaos_seed();
    eprintln!("chaos: seed {seed} (set REPRISE_CHAOS_SEED={seed} to replay this run)");
    let mut rng = Rng::new(seed);
    let kills = rng.range(3, 5);
    let delays: Vec<u64> = (0..kills).map(|_| rng.range(100, 1500)).collect();
    eprintln!("chaos: seed {seed}: kills {delays:?} ms apart");

    let c = components();
    let address = format!("127.0.0.1:{}", fixed_port());
    let mut host = TestHost::prepare(&[
        &c.approval,
        &c.phone_verification,
        &c.counter,
        &c.hello_sequence,
        &c.fan_out_fan_in,
        &c.event_log,
        &c.misbehaving,
    ])
    .listening_on(&address)
    .started()
    .await;
    let base = host.base.clone();

    // The long-lived instances, started before the chaos.
    let counters: Vec<String> = (0..COUNTERS)
        .map(|n| format!("chaos-counter-{n}"))
        .collect();
    for id in &counters {
        host.start_instance("E3_Counter", Some(id), "").await;
    }
    let log = host.start_instance("EventLog", Some("chaos-log"), "").await;

    let tally = Arc::new(Tally::default());
    let api = Api {
        // A connection per request: a kept-alive connection to the host a
        // kill has just ended, handed out again before the client saw it
        // close, could leave the request waiting for an answer until the
        // timeout (the client's log of such a hang: the hung request
        // reused an idle connection at the instant of a kill, and the host
        // never had it). A host that hangs is still caught: 30 s.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        base: base.clone(),
        tally: Arc::clone(&tally),
        database: host.database_url().map(str::to_owned),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (n, id) in counters.iter().enumerate() {
        senders.push(tokio::spawn(send_bursts(
            api.clone(),
            Rng::fork(seed, n as u64 + 1),
            id.clone(),
            "operation",
            |_| "\"incr\"".to_owned(),
            Arc::clone(&stop),
        )));
    }
    let log_sender = tokio::spawn(send_bursts(
        api.clone(),
        Rng::fork(seed, 100),
        log.clone(),
        "item",
        |n| n.to_string(),
        Arc::clone(&stop),
    ));
    let starters: Vec<_> = (0..STARTERS)
        .map(|n| {
            tokio::spawn(start_instances(
                api.clone(),
                Rng::fork(seed, 200 + n as u64),
                n,
                Arc::clone(&stop),
            ))
        })
        .collect();

    // The killer: once the workload is under way, SIGKILL and restart at
    // each scheduled instant.
    let under_way = format!("the workload to get under way (seed {seed})");
    wait_for_progress(&host, &tally, &under_way, 30, 3).await;
    let mut in_flight_at_kills = Vec::new();
    for delay in &delays {
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        // Strike while requests are on the wire (senders pause between
        // bursts), so some are cut off mid-way.
        let in_flight = host
            .wait_until(
                &format!("requests in flight to kill into (seed {seed})"),
                Duration::from_secs(30),
                async || match tally.in_flight.load(Ordering::SeqCst) {
                    0 => Err("none".to_owned()),
                    n => Ok(n),
                },
            )
            .await;
        let pid = host.pid();
        eprintln!("chaos: seed {seed}: kill at {:?}", began.elapsed());
        // SIGKILL at once; `restart` reaps the process and starts another.
        host.kill_now();
        in_flight_at_kills.push(in_flight);
        host.restart().await;
        eprintln!("chaos: seed {seed}: up again at {:?}", began.elapsed());
        assert_ne!(host.pid(), pid, "seed {seed}: the host was not restarted");
        assert_eq!(
            host.base, base,
            "seed {seed}: the host came back on another address"
        );
    }
    // More work lands on the last incarnation, then the workload stops.
    let (events, starts) = tally.progress();
    let after = format!("work accepted after the last restart (seed {seed})");
    wait_for_progress(&host, &tally, &after, events + 30, starts + 3).await;
    stop.store(true, Ordering::SeqCst);
    let mut counter_events = Vec::new();
    for sender in senders {
        counter_events.push(
            sender.await.unwrap_or_else(|error| {
                panic!("seed {seed}: a counter's sender panicked: {error}")
            }),
        );
    }
    let log_events = log_sender
        .await
        .unwrap_or_else(|error| panic!("seed {seed}: the log's sender panicked: {error}"));
    let mut starts = Vec::new();
    for starter in starters {
        starts.extend(
            starter
                .await
                .unwrap_or_else(|error| panic!("seed {seed}: a starter panicked: {error}")),
        );
    }
    let chaos_ended = began.elapsed();

    // The kills landed mid-work.
    let (refused, cut_off) = (
        tally.refused.load(Ordering::SeqCst),
        tally.cut_off.load(Ordering::SeqCst),
    );
    eprintln!(
        "chaos: seed {seed}: {} kills, requests in flight at each: {in_flight_at_kills:?}; \
         {} events and {} starts accepted, {refused} requests refused, {cut_off} cut off",
        delays.len(),
        tally.accepted_events.load(Ordering::SeqCst),
        tally.accepted_starts.load(Ordering::SeqCst),
    );
    let slowest = tally.slowest.lock().unwrap().clone();
    eprintln!(
        "chaos: seed {seed}: slowest request {slowest:?}; workload stopped at {chaos_ended:?}"
    );
    // A healthy host answers in well under a second; one that answers
    // nothing for this long is stuck (the client gives up at 30 s).
    assert!(
        slowest.0 < Duration::from_secs(15),
        "seed {seed}: a request hung: {slowest:?}\nhost log:\n{}",
        host.log()
    );
    assert!(
        cut_off > 0,
        "seed {seed}: no kill cut off a request in flight (in flight at the kills: \
         {in_flight_at_kills:?})"
    );
    assert!(refused > 0, "seed {seed}: no request found the host down");
    for (what, events) in counters
        .iter()
        .zip(&counter_events)
        .chain([(&log, &log_events)])
    {
        assert!(
            events.unexpected.is_empty(),
            "seed {seed}: events to {what} got unexpected answers: {:?}",
            events.unexpected
        );
    }
    let unexpected: Vec<&Start> = starts
        .iter()
        .filter(|start| {
            matches!(&start.sent, Sent::Answered(status, _)
                if *status != StatusCode::ACCEPTED && *status != StatusCode::SERVICE_UNAVAILABLE)
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "seed {seed}: starts got unexpected answers: {unexpected:?}"
    );

    // The host is up and no event is in flight any more: end the counters
    // and the log.
    for id in counters.iter().chain([&log]) {
        let event = if *id == log { "item" } else { "operation" };
        let reply = host
            .try_post(&format!("/instances/{id}/raiseEvent/{event}"), "\"end\"")
            .await
            .unwrap_or_else(|error| panic!("seed {seed}: ending {id}: {error}"));
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "seed {seed}: ending {id}: {reply:?}"
        );
    }

    // Which started instances exist: every 202'd one must; one whose
    // response was cut off may; one that never reached the host must not.
    let mut expected: HashMap<String, Value> = HashMap::new();
    let mut must_exist = HashSet::new();
    let mut must_not_exist = HashSet::new();
    let mut verifications = Vec::new();
    for start in &starts {
        match &start.sent {
            Sent::Answered(StatusCode::ACCEPTED, _) => {
                must_exist.insert(start.id.clone());
            }
            Sent::CutOff => {}
            _ => {
                must_not_exist.insert(start.id.clone());
                continue;
            }
        }
        expected.insert(start.id.clone(), start.expected.clone());
        if let Some((child, output)) = &start.child {
            expected.insert(child.clone(), output.clone());
        }
        if start.verification {
            verifications.push(start.id.clone());
        }
    }
    // Answer each phone verification that exists with its code.
    for id in &verifications {
        let status = host.status(id).await;
        if status.status == StatusCode::NOT_FOUND {
            assert!(
                !must_exist.contains(id),
                "seed {seed}: {id} was started (202) but does not exist"
            );
            continue;
        }
        let code = challenge_code(&host, id, seed).await;
        let reply = host
            .raise(id, "SmsChallengeResponse", &code.to_string())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "seed {seed}: answering {id}: {reply:?}"
        );
    }

    // Everything finishes.
    let instances = host
        .wait_until(
            &format!("every instance to finish (seed {seed})"),
            Duration::from_secs(120),
            async || {
                let instances = list(&host, "chaos-").await?;
                let ids: HashSet<&str> = instances
                    .iter()
                    .map(|instance| instance["instanceId"].as_str().unwrap())
                    .collect();
                let missing = must_exist
                    .iter()
                    .filter(|id| !ids.contains(id.as_str()))
                    .count();
                let unfinished: Vec<&str> = instances
                    .iter()
                    .filter(|instance| {
                        !["Completed", "Failed", "Terminated"]
                            .contains(&instance["runtimeStatus"].as_str().unwrap())
                    })
                    .map(|instance| instance["instanceId"].as_str().unwrap())
                    .collect();
                if missing == 0 && unfinished.is_empty() {
                    Ok(instances)
                } else {
                    Err(format!("{missing} missing, unfinished: {unfinished:?}"))
                }
            },
        )
        .await;

    let mut finished: HashMap<String, Value> = HashMap::new();
    for instance in instances {
        let id = instance["instanceId"].as_str().unwrap().to_owned();
        finished.insert(id, instance);
    }
    let not_completed: Vec<&Value> = finished
        .values()
        .filter(|instance| instance["runtimeStatus"] != "Completed")
        .collect();
    assert!(
        not_completed.is_empty(),
        "seed {seed}: instances that should have completed did not: {not_completed:#?}"
    );
    let appeared: Vec<&String> = must_not_exist
        .iter()
        .filter(|id| finished.contains_key(*id))
        .collect();
    assert!(
        appeared.is_empty(),
        "seed {seed}: starts that never reached the host (or got 503) exist: {appeared:?}"
    );
    for (id, instance) in &finished {
        if id.starts_with("chaos-counter-") || *id == log {
            continue;
        }
        let want = expected
            .get(id)
            .unwrap_or_else(|| panic!("seed {seed}: an instance nobody started: {instance}"));
        assert_eq!(
            &instance["output"], want,
            "seed {seed}: {id} completed with the wrong output: {instance}"
        );
    }

    // Each counter counted every 202'd "incr" once; an "incr" cut off by a
    // kill may have counted too.
    for (id, events) in counters.iter().zip(&counter_events) {
        let output = finished[id]["output"]
            .as_u64()
            .unwrap_or_else(|| panic!("seed {seed}: {id} output {}", finished[id]));
        let (accepted, cut_off) = (events.accepted.len() as u64, events.cut_off.len() as u64);
        assert!(
            (accepted..=accepted + cut_off).contains(&output),
            "seed {seed}: {id} counted {output}, but {accepted} increments were accepted \
             (202) and {cut_off} cut off by a kill"
        );
    }
    // The log shows exactly which events were applied.
    let applied: Vec<u64> = finished[&log]["output"]
        .as_array()
        .unwrap_or_else(|| panic!("seed {seed}: log output {}", finished[&log]))
        .iter()
        .map(|item| item.as_u64().unwrap())
        .collect();
    let applied_set: HashSet<u64> = applied.iter().copied().collect();
    let mut seen = HashSet::new();
    let twice: Vec<u64> = applied
        .iter()
        .copied()
        .filter(|n| !seen.insert(*n))
        .collect();
    assert!(
        twice.is_empty(),
        "seed {seed}: events applied twice: {twice:?}"
    );
    let mut lost: Vec<&u64> = log_events.accepted.difference(&applied_set).collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "seed {seed}: events accepted (202) but never applied: {lost:?}"
    );
    let mut phantom: Vec<&u64> = applied_set
        .iter()
        .filter(|n| !log_events.accepted.contains(n) && !log_events.cut_off.contains(n))
        .collect();
    phantom.sort();
    assert!(
        phantom.is_empty(),
        "seed {seed}: events applied that were refused or never sent: {phantom:?}"
    );
    assert!(
        applied_set.is_disjoint(&log_events.not_applied),
        "seed {seed}: refused events were applied"
    );

    let accepted_starts = must_exist.len();
    let counted: Vec<String> = counters
        .iter()
        .zip(&counter_events)
        .map(|(id, events)| {
            format!(
                "{} ({} accepted, {} cut off)",
                finished[id]["output"],
                events.accepted.len(),
                events.cut_off.len()
            )
        })
        .collect();
    eprintln!(
        "chaos: seed {seed}: passed; {accepted_starts} starts accepted ({} instances with \
         children); counters at {counted:?}; {} log events applied, {} of them cut off; \
         chaos {chaos_ended:?}, total {:?}",
        finished.len(),
        applied.len(),
        applied_set.intersection(&log_events.cut_off).count(),
        began.elapsed()
    );
}
