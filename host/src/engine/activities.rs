//! Runs activities, each in the activity sandbox with a timeout, and
//! records each result as a message for its instance, exactly once.
//! Results of activities that end together share a group commit, so
//! throughput does not hang on one fsync per activity and worker.
//!
//! An activity reaches a worker one of two ways. Usually the episode that
//! schedules it reserves a free worker ([`Reserved`]) and the commit leases
//! the activity as it inserts it; the engine starts it once the commit
//! lands. When no worker was free, the activity waits in the store, and a
//! dispatcher leases waiting activities, as many at once as workers are
//! free (one transaction), and starts them.
//!
//! Delivery is at least once: if the host dies mid-run, the lease is
//! released at start-up and the activity runs again. Recording is at most
//! once: the store removes the queued activity in the same transaction
//! that records its result, and refuses a second result.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::KeyValue;

use tokio::sync::OwnedSemaphorePermit;

use super::{Shared, blocking, direct, stored};
use crate::metrics::{self, ActivityOutcome, FailureKind};
use crate::model::{Failure, Message, Millis, now_millis};
use crate::runtime::{GuestError, wire};
use crate::store::{
    ActivityLease, ActivityWork, DirectEpisode, EpisodeCommit, LeasedActivities, StoreError,
};
use crate::traces::{InstanceTrace, Span, SpanOf, Traces};

/// Extra lease time beyond the timeout, for recording the result.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often an idle dispatcher looks for work it was not woken for (expired leases).
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// How often the release of a lost commit's leases is tried again.
const RELEASE_RETRY: Duration = Duration::from_secs(1);
/// How long a lost commit's leases are looked for (a commit whose answer
/// was lost may still be landing on the server), in milliseconds.
const RELEASE_PATIENCE: Millis = 60_000;

/// How long a worker holds an activity's lease.
fn lease_length(shared: &Shared) -> Millis {
    (shared.config.activity_timeout + LEASE_MARGIN).as_millis() as Millis
}

/// Workers reserved for activities about to be leased.
pub(super) struct Reserved(Vec<OwnedSemaphorePermit>);

impl Reserved {
    /// Reserves a free worker for each activity `commit` schedules (as
    /// many as are free) and has the commit lease that many.
    pub(super) fn for_commit(shared: &Shared, commit: &mut EpisodeCommit) -> Reserved {
        let permits: Vec<_> = (0..commit.activities.len())
            .map_while(|_| {
                Arc::clone(&shared.activity_workers)
                    .try_acquire_owned()
                    .ok()
            })
            .collect();
        commit.lease = ActivityLease {
            count: permits.len(),
            from: now_millis(),
            length: lease_length(shared),
        };
        Reserved(permits)
    }

    /// Runs `leased`, one on each reserved worker (there are never fewer).
    pub(super) fn start(self, shared: &Arc<Shared>, leased: Vec<ActivityWork>) {
        debug_assert!(leased.len() <= self.0.len());
        for (work, permit) in leased.into_iter().zip(self.0) {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                run_one(&shared, work).await;
                drop(permit);
            });
        }
    }
}

/// Frees the activities a commit leased (`leased`) if it failed with an
/// unknown outcome (`error`): had it landed, they would wait, leased to
/// this host and run by none of its workers, for their lease to end (the
/// activity timeout and a margin). Asked again each second while the store
/// does not answer or finds nothing (a commit still landing becomes
/// visible late), for at most [`RELEASE_PATIENCE`] and never past the
/// lease's end.
pub(super) fn release_if_lost(
    shared: &Arc<Shared>,
    leased: Option<LeasedActivities>,
    error: &StoreError,
) {
    let (Some(leased), StoreError::OutcomeUnknown(_)) = (leased, error) else {
        return;
    };
    let give_up_at = (leased.from + leased.length).min(now_millis() + RELEASE_PATIENCE);
    tokio::spawn(release_lost(Arc::clone(shared), leased, give_up_at));
}

/// Asks the store to release `leased` each [`RELEASE_RETRY`] until it
/// releases some or `give_up_at` passes.
async fn release_lost(shared: Arc<Shared>, leased: LeasedActivities, give_up_at: Millis) {
    let id = leased.instance_id.clone();
    loop {
        let (store, asked) = (Arc::clone(&shared.store), leased.clone());
        match stored(move || store.release_lost_leases(&asked)).await {
            Ok(0) => tracing::debug!(instance = %id, "no lease of a lost commit found (yet)"),
            Ok(released) => {
                tracing::info!(instance = %id, released, "released the activity leases of a commit whose outcome was unknown");
                shared.activities_changed.notify_one();
                return;
            }
            Err(error) => {
                tracing::debug!(instance = %id, "cannot release the leases of a lost commit yet: {error:#}")
            }
        }
        if now_millis() >= give_up_at {
            return;
        }
        tokio::time::sleep(RELEASE_RETRY).await;
    }
}

/// Leases and starts the activities no episode could hand a worker (none
/// was free), and those whose lease expired, as workers become free.
pub(super) async fn run_dispatcher(shared: Arc<Shared>) {
    let workers = &shared.activity_workers;
    loop {
        let first = Arc::clone(workers)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut permits = vec![first];
        permits.extend(std::iter::from_fn(|| {
            Arc::clone(workers).try_acquire_owned().ok()
        }));
        let wanted = permits.len();
        let store = Arc::clone(&shared.store);
        let lease = lease_length(&shared);
        match stored(move || store.claim_activities(now_millis(), lease, wanted)).await {
            Ok(claimed) => {
                // Fewer than asked for: none is left waiting, until woken.
                let more = claimed.len() == wanted;
                Reserved(permits).start(&shared, claimed);
                if more {
                    continue;
                }
            }
            Err(error) => tracing::error!("cannot claim activities: {error:#}"),
        }
        tokio::select! {
            () = shared.activities_changed.notified() => {}
            () = tokio::time::sleep(IDLE_RECHECK) => {}
        }
    }
}

/// Records an activity run in the metrics (a name no loaded component
/// provides under [`metrics::UNKNOWN`]).
fn record_run(
    shared: &Shared,
    name: &str,
    result: &Result<String, Failure>,
    failure: Option<FailureKind>,
    took: Duration,
) {
    let label = metrics::function_label(name, shared.runtime.serves_activity(name));
    let outcome = match result {
        Ok(_) => ActivityOutcome::Completed,
        Err(_) => ActivityOutcome::Failed(failure),
    };
    shared.metrics.activity_ran(label, outcome, took);
}

async fn run_one(shared: &Arc<Shared>, work: ActivityWork) {
    let (began_at, began) = (SystemTime::now(), Instant::now());
    let Some((result, failure)) = execute(shared, &work).await else {
        return;
    };
    let bounded = shared
        .config
        .step_limits
        .bound_activity_result(&work.name, result.clone());
    // An output over the limit fails the activity, as the orchestrator sees.
    let failure = match (&result, &bounded) {
        (Ok(_), Err(_)) => Some(FailureKind::Limits),
        _ => failure,
    };
    record_run(shared, &work.name, &bounded, failure, began.elapsed());
    let instance_id = work.instance_id.clone();
    let trace = InstanceTrace::of(work.trace.as_deref());
    let ran = Ran {
        name: work.name.clone(),
        began: began_at,
        error: bounded
            .as_ref()
            .err()
            .map(|failure| failure.message.clone()),
    };
    match record_result(shared, work, bounded).await {
        Ok(applied) => {
            if !applied {
                tracing::debug!(instance = %instance_id, "activity result discarded: its generation ended");
            }
            if let (Some(traces), Some(trace)) = (&shared.traces, trace) {
                send_span(traces, &trace, &instance_id, ran);
            }
        }
        Err(error) => {
            tracing::error!(instance = %instance_id, "cannot record an activity result; it will run again: {error:#}")
        }
    }
}

/// Runs `work`'s activity: its result (the guest's own `Err` for a
/// failure), and the kind of failure if it is the guest's fault; `None` if
/// the host could not run it (it stays leased and runs again).
async fn execute(
    shared: &Arc<Shared>,
    work: &ActivityWork,
) -> Option<(Result<String, Failure>, Option<FailureKind>)> {
    let timeout = shared.config.activity_timeout;
    let runtime = Arc::clone(&shared.runtime);
    let context = context_of(work);
    let (name, input, version) = (work.name.clone(), work.input.clone(), work.version.clone());
    // Loading the version (from the store, compiling it) is not the
    // activity's time; it is rarely needed, so no hop when it is not.
    if version.as_deref().is_some_and(|v| !runtime.has_version(v)) {
        let shared = Arc::clone(shared);
        let wanted = version.clone();
        let _ = tokio::task::spawn_blocking(move || shared.ensure_version(wanted.as_deref())).await;
    }
    let run = tokio::task::spawn_blocking(move || {
        runtime.run_activity(&name, version.as_deref(), &input, &context, timeout)
    });
    // The sandbox interrupts guest code at the timeout; this also covers
    // time spent blocked in the host on the guest's behalf.
    Some(
        match tokio::time::timeout(timeout + Duration::from_secs(1), run).await {
            Ok(Ok(Ok(outcome))) => (outcome.map_err(Failure::from), None),
            Ok(Ok(Err(GuestError::Host(error)))) => {
                // Not the activity's fault: leave it leased; it runs again when
                // the lease expires.
                tracing::error!(activity = %work.name, instance = %work.instance_id, "cannot run the activity: {error:#}");
                return None;
            }
            Ok(Ok(Err(GuestError::TimedOut))) | Err(_) => {
                let seconds = timeout.as_secs_f64();
                let failed = format!("the activity ran past its timeout of {seconds}s");
                (
                    Err(Failure::new(Failure::TIMEOUT, failed)),
                    Some(FailureKind::Timeout),
                )
            }
            Ok(Ok(Err(error @ GuestError::UnknownActivity(_)))) => (
                Err(Failure::permanent(Failure::NOT_FOUND, error.to_string())),
                None,
            ),
            Ok(Ok(Err(error))) => {
                let kind = FailureKind::of(&error);
                let message = format!("the activity {error}");
                (Err(Failure::new(failure_kind(kind), message)), kind)
            }
            Ok(Err(panic)) => (
                Err(Failure::new(
                    Failure::TRAP,
                    format!("the activity could not run: {panic}"),
                )),
                None,
            ),
        },
    )
}

/// Records `result` for `work` (with the instance warm, applies it in the
/// transaction that records it: see `direct.rs`); `false` if its
/// generation had ended.
async fn record_result(
    shared: &Arc<Shared>,
    work: ActivityWork,
    result: Result<String, Failure>,
) -> anyhow::Result<bool> {
    let shared = Arc::clone(shared);
    let instance_id = work.instance_id.clone();
    let mut claim = direct::Claim::for_message(&shared, &instance_id).await;
    blocking(move || {
        let episode = claim.as_mut().and_then(|claim| {
            claim.plan_message(Message::ActivityDone {
                generation: work.generation,
                id: work.task_id,
                result: result.clone(),
            })
        });
        let leased = episode.as_ref().and_then(DirectEpisode::leases);
        let applied = shared
            .store
            .complete_activity(&work, result, episode)
            .inspect_err(|error| release_if_lost(&shared, leased, error))?;
        let recorded = applied.is_some();
        if let Some(applied) = applied {
            direct::settle(&shared, &work.instance_id, claim, applied);
        }
        Ok(recorded)
    })
    .await
}

/// What the activity is told of its call. The key is unique per task of
/// the instance: generations restart task numbering.
fn context_of(work: &ActivityWork) -> wire::ActivityContext {
    wire::ActivityContext {
        instance_id: work.instance_id.clone(),
        task_id: work.task_id,
        idempotency_key: format!("{}/{}/{}", work.instance_id, work.generation, work.task_id),
        attempt: work.attempt,
    }
}

/// The contract's kind of a guest fault.
pub(super) fn failure_kind(kind: Option<FailureKind>) -> &'static str {
    match kind {
        Some(FailureKind::Timeout) => Failure::TIMEOUT,
        Some(FailureKind::Memory) => Failure::OUT_OF_MEMORY,
        Some(FailureKind::Fuel) => Failure::OUT_OF_FUEL,
        Some(FailureKind::Limits) => Failure::LIMITS,
        Some(FailureKind::Trap | FailureKind::NonDeterminism) | None => Failure::TRAP,
    }
}

/// An activity run, for its span.
struct Ran {
    name: String,
    began: SystemTime,
    error: Option<String>,
}

fn send_span(traces: &Traces, trace: &InstanceTrace, instance_id: &str, ran: Ran) {
    let attributes = vec![
        KeyValue::new("reprise.instance_id", instance_id.to_owned()),
        KeyValue::new("reprise.activity", ran.name.clone()),
    ];
    let span = Span {
        name: format!("activity {}", ran.name).into(),
        start: ran.began,
        end: SystemTime::now(),
        attributes,
        error: ran.error,
    };
    traces.send(trace, span, SpanOf::Step);
}
