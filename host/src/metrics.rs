//! Prometheus metrics, served at `GET /metrics`: what the host has done
//! since it started (counters and histograms: an instance's start and end
//! and an episode are recorded once their commit has landed, so a commit
//! refused and planned again counts once; an activity counts each run, and
//! activities run at least once), and at each scrape what waits (gauges
//! read from the store and the engine).
//!
//! Every name starts with `reprise_`. Labels are bounded: function names
//! (a name no loaded component provides counts as `(unknown)`, so a guest
//! inventing names cannot grow the series), statuses, outcomes, route
//! templates; never an instance ID. The README lists each metric.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use reprise_core::entity::EntityId;
use reprise_core::model::RuntimeStatus;
use reprise_core::store::{CommitObserver, EpisodeCommit, StoreCounts};

use crate::runtime::GuestError;

/// What the text of a scrape is, for the `Content-Type` header.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label of a function name no loaded component provides.
const UNKNOWN: &str = "(unknown)";

/// The label of function `name`: itself if a loaded component provides it
/// (`served`), else [`UNKNOWN`], so a guest inventing names cannot grow
/// the series.
pub fn function_label(name: &str, served: bool) -> &str {
    if served { name } else { UNKNOWN }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrchestratorLabel {
    orchestrator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabel {
    execution: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabel {
    activity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityOutcomeLabels {
    activity: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    function: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// How a guest failed, for `reprise_guest_failures_total`: the failures
/// that are the guest's, not an error it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Fuel,
    Memory,
    Timeout,
    /// An orchestrator's replay did not match its history.
    NonDeterminism,
    /// An orchestrator step went over the step limits, or it continued as
    /// new without end.
    Limits,
}

impl FailureKind {
    /// The kind of `error`, if it is the guest's failure.
    pub fn of(error: &GuestError) -> Option<FailureKind> {
        match error {
            GuestError::Trap { .. } => Some(FailureKind::Trap),
            GuestError::OutOfFuel(_) => Some(FailureKind::Fuel),
            GuestError::OutOfMemory { .. } => Some(FailureKind::Memory),
            GuestError::TimedOut => Some(FailureKind::Timeout),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Fuel => "fuel",
            FailureKind::Memory => "memory",
            FailureKind::Timeout => "timeout",
            FailureKind::NonDeterminism => "nondeterminism",
            FailureKind::Limits => "limits",
        }
    }
}

/// Which execution stepped an episode's orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// One kept from the instance's last episode: nothing replayed.
    Warm,
    /// A new one, with no history to replay (a generation's first episode).
    New,
    /// A new one, replayed through the stored history.
    Cold,
    /// None: the episode only recorded the host's decisions (a
    /// termination, a suspension).
    NoGuest,
    /// An entity's: a guest instance for its batch of operations.
    Entity,
}

impl Execution {
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Warm => "warm",
            Execution::New => "new",
            Execution::Cold => "cold",
            Execution::NoGuest => "none",
            Execution::Entity => "entity",
        }
    }
}

/// What planning an episode took, told with its commit.
#[derive(Debug, Clone, Copy)]
pub struct EpisodeReport {
    pub execution: Execution,
    /// When planning began.
    pub began: std::time::SystemTime,
    /// History entries a cold execution replayed.
    pub replayed: usize,
    /// Planning's time: loading (or replaying) the guest and stepping it.
    pub took: Duration,
    /// How the orchestrator failed, if it failed by its own fault.
    pub failure: Option<FailureKind>,
}

/// What an episode's commit did to its instance, as the metrics count it.
#[derive(Debug, Clone)]
pub struct EpisodeEffect {
    /// The label of the instance's orchestrator.
    pub orchestrator: String,
    /// The instance's first episode.
    pub started: bool,
    /// The status it finished in, if it finished.
    pub finished: Option<RuntimeStatus>,
}

impl EpisodeEffect {
    /// What `commit` does; `orchestrator` labels the instance's one.
    pub fn of(commit: &EpisodeCommit, orchestrator: &str) -> EpisodeEffect {
        EpisodeEffect {
            orchestrator: orchestrator.to_owned(),
            // An entity is created by its first message: not an instance.
            started: commit.read.status == RuntimeStatus::Pending
                && !EntityId::is_entity(&commit.read.id),
            finished: commit.finishes().then_some(commit.updated.status),
        }
    }
}

/// What one activity run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityOutcome {
    Completed,
    Failed(Option<FailureKind>),
}

/// What waits, read at a scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `None` if the store could not be read.
    pub store: Option<StoreCounts>,
    /// Instances waiting for an episode worker.
    pub backlog: usize,
    pub warm_executions: usize,
    pub orchestrators: usize,
    pub activities: usize,
    pub component_versions: usize,
}

/// The host's metrics. Recording is cheap (an atomic add, a map lookup for
/// labelled ones, a short lock for a histogram); encoding happens only at
/// a scrape.
pub struct Metrics {
    registry: Registry,
    started: Family<OrchestratorLabel, Counter>,
    completed: Family<OrchestratorLabel, Counter>,
    failed: Family<OrchestratorLabel, Counter>,
    terminated: Family<OrchestratorLabel, Counter>,
    episodes: Family<ExecutionLabel, Counter>,
    episode_seconds: Histogram,
    replayed_events: Histogram,
    activities: Family<ActivityOutcomeLabels, Counter>,
    activity_seconds: Histograms<ActivityLabel>,
    guest_failures: Family<FailureLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RouteLabels>,
    commit_writes: Histogram,
    commit_seconds: Histogram,
    instances: Family<StatusLabel, Gauge>,
    queued_messages: Gauge,
    pending_timers: Gauge,
    queued_activities: Family<StateLabel, Gauge>,
    backlog: Gauge,
    warm_executions: Gauge,
    handed_over: Counter,
    functions: Family<KindLabel, Gauge>,
    component_versions: Gauge,
    store_up: Gauge,
}

/// 100 µs to about 100 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// 1 to 65,536, doubling.
fn sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("reprise"),
            started: Family::default(),
            completed: Family::default(),
            failed: Family::default(),
            terminated: Family::default(),
            episodes: Family::default(),
            episode_seconds: seconds(),
            replayed_events: sizes(),
            activities: Family::default(),
            activity_seconds: Family::new_with_constructor(seconds),
            guest_failures: Family::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(seconds),
            commit_writes: sizes(),
            commit_seconds: seconds(),
            instances: Family::default(),
            queued_messages: Gauge::default(),
            pending_timers: Gauge::default(),
            queued_activities: Family::default(),
            backlog: Gauge::default(),
            warm_executions: Gauge::default(),
            handed_over: Counter::default(),
            functions: Family::default(),
            component_versions: Gauge::default(),
            store_up: Gauge::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let registry = &mut self.registry;
        let instances = |what: &str| format!("Orchestration instances {what}, by orchestrator");
        registry.register(
            "instances_started",
            instances("started"),
            self.started.clone(),
        );
        registry.register(
            "instances_completed",
            instances("completed"),
            self.completed.clone(),
        );
        registry.register("instances_failed", instances("failed"), self.failed.clone());
        registry.register(
            "instances_terminated",
            instances("terminated"),
            self.terminated.clone(),
        );
        registry.register(
            "episodes",
            "Episodes committed, by the execution that ran the orchestrator (warm, new, cold, none; entity for an entity's operations)",
            self.episodes.clone(),
        );
        registry.register_with_unit(
            "episode_duration",
            "Time an episode took to plan: the orchestrator's replay and steps",
            Unit::Seconds,
            self.episode_seconds.clone(),
        );
        registry.register(
            "episode_replayed_events",
            "History entries a cold episode replayed",
            self.replayed_events.clone(),
        );
        registry.register(
            "activities",
            "Activity runs, by activity and outcome (completed, failed)",
            self.activities.clone(),
        );
        registry.register_with_unit(
            "activity_duration",
            "Time an activity run took, by activity",
            Unit::Seconds,
            self.activity_seconds.clone(),
        );
        registry.register(
            "guest_failures",
            "Guest failures by function (orchestrator, activity) and kind (trap, fuel, memory, timeout, nondeterminism, limits)",
            self.guest_failures.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to its headers), by route template and method",
            Unit::Seconds,
            self.request_seconds.clone(),
        );
        registry.register(
            "store_commit_writes",
            "Writes per store transaction (group commit)",
            self.commit_writes.clone(),
        );
        registry.register_with_unit(
            "store_commit_duration",
            "Time a store transaction took, begin to commit",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        registry.register(
            "instances",
            "Instances in the store, by status (read at the scrape)",
            self.instances.clone(),
        );
        registry.register(
            "queued_messages",
            "Messages queued for instances, not applied yet",
            self.queued_messages.clone(),
        );
        registry.register(
            "pending_timers",
            "Durable timers not fired yet",
            self.pending_timers.clone(),
        );
        registry.register(
            "queued_activities",
            "Activities not finished, by state (waiting for a worker, leased by one)",
            self.queued_activities.clone(),
        );
        registry.register(
            "backlog",
            "Instances this host runs an episode of or has waiting for a worker",
            self.backlog.clone(),
        );
        registry.register(
            "warm_executions",
            "Orchestrator executions this host keeps alive between episodes",
            self.warm_executions.clone(),
        );
        registry.register(
            "instances_handed_over",
            "Instances this host handed over to the host their requests kept arriving at",
            self.handed_over.clone(),
        );
        registry.register(
            "functions",
            "Functions loaded, by kind (orchestrator, activity)",
            self.functions.clone(),
        );
        registry.register(
            "store_up",
            "1 if the last scrape read the store's counts, 0 if it could not (they keep their last values)",
            self.store_up.clone(),
        );
        registry.register(
            "component_versions",
            "Component versions loaded from the functions folder",
            self.component_versions.clone(),
        );
    }

    /// Records a committed episode: the instance's start (its first
    /// episode) or end, and what its planning took (`None`: the host
    /// decided it alone).
    pub fn episode_committed(&self, effect: &EpisodeEffect, report: Option<&EpisodeReport>) {
        let label = || OrchestratorLabel {
            orchestrator: effect.orchestrator.clone(),
        };
        if effect.started {
            self.started.get_or_create(&label()).inc();
        }
        let finished = match effect.finished {
            Some(RuntimeStatus::Completed) => Some(&self.completed),
            Some(RuntimeStatus::Failed) => Some(&self.failed),
            Some(_) => Some(&self.terminated),
            None => None,
        };
        if let Some(finished) = finished {
            finished.get_or_create(&label()).inc();
        }
        let Some(report) = report else {
            return;
        };
        let execution = report.execution.as_str();
        self.episodes
            .get_or_create(&ExecutionLabel { execution })
            .inc();
        self.episode_seconds.observe(report.took.as_secs_f64());
        if report.execution == Execution::Cold {
            self.replayed_events.observe(report.replayed as f64);
        }
        if let Some(kind) = report.failure {
            self.guest_failed("orchestrator", kind);
        }
    }

    /// Records an instance handed over to the host its requests arrive at.
    pub fn instance_handed_over(&self) {
        self.handed_over.inc();
    }

    /// Records an activity run; `activity` is its label.
    pub fn activity_ran(&self, activity: &str, outcome: ActivityOutcome, took: Duration) {
        let name = activity.to_owned();
        let label = match outcome {
            ActivityOutcome::Completed => "completed",
            ActivityOutcome::Failed(_) => "failed",
        };
        self.activities
            .get_or_create(&ActivityOutcomeLabels {
                activity: name.clone(),
                outcome: label,
            })
            .inc();
        self.activity_seconds
            .get_or_create(&ActivityLabel { activity: name })
            .observe(took.as_secs_f64());
        if let ActivityOutcome::Failed(Some(kind)) = outcome {
            self.guest_failed("activity", kind);
        }
    }

    fn guest_failed(&self, function: &'static str, kind: FailureKind) {
        self.guest_failures
            .get_or_create(&FailureLabels {
                function,
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Records an answered HTTP request; `route` is its template
    /// (`/runtime/webhooks/durabletask/instances/{instance_id}`).
    pub fn request_answered(
        &self,
        route: &str,
        method: &http::Method,
        status: u16,
        took: Duration,
    ) {
        let method = method_label(method);
        let route = route.to_owned();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// The text of a scrape, with the gauges set from `snapshot`.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        self.set_gauges(snapshot);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn set_gauges(&self, snapshot: &Snapshot) {
        self.backlog.set(snapshot.backlog as i64);
        self.warm_executions.set(snapshot.warm_executions as i64);
        for (kind, count) in [
            ("orchestrator", snapshot.orchestrators),
            ("activity", snapshot.activities),
        ] {
            self.functions
                .get_or_create(&KindLabel { kind })
                .set(count as i64);
        }
        self.component_versions
            .set(snapshot.component_versions as i64);
        self.store_up.set(i64::from(snapshot.store.is_some()));
        if let Some(store) = &snapshot.store {
            self.set_store_gauges(store);
        }
    }

    fn set_store_gauges(&self, store: &StoreCounts) {
        for status in RuntimeStatus::ALL {
            if status == RuntimeStatus::ContinuedAsNew {
                continue;
            }
            let count = store
                .instances
                .iter()
                .find(|(counted, _)| *counted == status)
                .map_or(0, |(_, count)| *count);
            self.instances
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(count as i64);
        }
        self.queued_messages.set(store.messages as i64);
        self.pending_timers.set(store.timers as i64);
        for (state, count) in [
            ("waiting", store.activities_waiting),
            ("leased", store.activities_leased),
        ] {
            self.queued_activities
                .get_or_create(&StateLabel { state })
                .set(count as i64);
        }
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, writes: usize, took: Duration) {
        self.commit_writes.observe(writes as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }
}

/// A method as a label: the standard ones, any other as `other`.
fn method_label(method: &http::Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    STANDARD
        .into_iter()
        .find(|standard| *standard == method.as_str())
        .unwrap_or("other")
}
