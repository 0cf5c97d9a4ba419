//! Orchestration: accepts requests, and runs episodes until every accepted
//! message is applied.
//!
//! [`Engine`] is what the HTTP API calls. Each request is committed to the
//! store first, then the instance is handed to the `scheduler`, which runs
//! `episode`s for it, one at a time per instance and several instances at
//! once. Start reading at [`Engine::raise_event`] and follow it into
//! `scheduler::Scheduler::notify` and `episode::plan`.

mod activities;
mod affinity;
mod bulk;
mod direct;
mod entities;
mod entity_calls;
mod entity_episode;
mod episode;
mod functions;
mod held_back;
mod peers;
mod record;
mod replay_check;
mod rewind;
mod scheduler;
mod set_aside;
mod staging;
mod timers;
mod warm;

use std::sync::Arc;
use std::time::Duration;

pub use self::bulk::{BulkAction, BulkProgress, MAX_RUNNING_JOBS};
pub use self::entities::{EntityQuery, EntityView};
use crate::entity::EntityId;
use crate::metrics::{Metrics, Snapshot};
use crate::model::{HistoryEntry, Instance, InstanceId, Message, RuntimeStatus, now_millis};
use crate::runtime::{FunctionFile, Runtime};
use crate::store::{
    Applied, CommitObserver, CommitOutcome, DirectEpisode, EpisodeCommit, LeasedActivities,
    NewInstance, Store, StoreError, WorkItem, WorkRead, held_until_resumed,
};
pub use crate::store::{ComponentVersion, DeliveryOutcome, PurgeOutcome, StartOutcome};
pub use crate::store::{InstanceFilter, PageCursor, PageOrder};
use crate::traces::{InstanceTrace, Traces};
pub use episode::StepLimits;
pub use replay_check::{RecordedGeneration, Verdict, check_replay};
use warm::WarmExecution;

use self::scheduler::Scheduler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindOutcome {
    Rewound,
    NotFound,
    /// Only failed instances can be rewound.
    NotFailed(RuntimeStatus),
    /// Something reached the instance while it was being rewound.
    Changed,
    /// Its generation called or locked entities: a re-run could not have
    /// their answers or locks again (the locks were released as it failed).
    UsedEntities,
}

/// Errors the engine reports to its callers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no orchestrator named '{0}' is loaded")]
    UnknownOrchestrator(String),
    #[error("no entity named '{0}' is loaded")]
    UnknownEntity(String),
    /// Too many instances wait for a worker: new work is refused (not
    /// queued), so memory stays bounded and the client retries later.
    #[error("the host is overloaded: {0} instances are waiting for a worker; retry later")]
    Overloaded(usize),
    /// The store failed (see [`StoreError`] for what to do about it). Its
    /// source, so a chain that holds this error finds the store's.
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How much work runs at once, and for how long.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Episodes that may run at once.
    pub workers: usize,
    /// Activities that may run at once.
    pub activity_workers: usize,
    /// Wall-clock time one activity call may take.
    pub activity_timeout: Duration,
    /// Guest executions kept alive between episodes (0: replay every time).
    pub warm_executions: usize,
    /// Linear memory the warm executions may have in all, in bytes.
    pub warm_memory_bytes: usize,
    /// How often component versions nobody needs are deleted; a version
    /// is kept at least this long after its file stopped serving it.
    pub version_gc_interval: Duration,
    /// Instances that may wait for a worker before new starts and events
    /// are refused as overload.
    pub max_backlog: usize,
    /// What one orchestrator step may produce.
    pub step_limits: StepLimits,
}

/// The orchestration engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    scheduler: Scheduler,
    /// Wakes the timer service when an episode created timers.
    timers_changed: tokio::sync::Notify,
    /// Wakes the activity dispatcher when an episode scheduled activities
    /// it did not lease.
    activities_changed: tokio::sync::Notify,
    /// Activity workers: the permits of those free.
    activity_workers: Arc<tokio::sync::Semaphore>,
    /// Guest executions kept alive between episodes.
    warm: warm::WarmCache,
    /// Which instances' requests keep arriving at another host.
    affinity: affinity::Affinity,
    /// Suspended instances that hold all they have queued.
    held_back: held_back::HeldBack,
    config: EngineConfig,
    metrics: Arc<Metrics>,
    /// Where spans go, when tracing is on.
    traces: Option<Traces>,
    /// Bulk actions running or recently done on this host.
    bulk: bulk::BulkJobs,
}

impl Shared {
    /// Wakes the timer service and the activity dispatcher for what a
    /// committed episode created.
    fn wake_background_work(&self, commit: &EpisodeCommit) {
        self.wake(BackgroundWork::of(commit));
    }

    /// Wakes the timer service, the activity dispatcher, or both.
    fn wake(&self, work: BackgroundWork) {
        if work.timers {
            self.timers_changed.notify_one();
        }
        if work.activities {
            self.activities_changed.notify_one();
        }
    }
}

/// Work for the timer service and the activity dispatcher.
#[derive(Debug, Clone, Copy)]
struct BackgroundWork {
    timers: bool,
    activities: bool,
}

impl BackgroundWork {
    /// Either may have work: look.
    const ANY: BackgroundWork = BackgroundWork {
        timers: true,
        activities: true,
    };

    /// Whether a commit created timers, and activities it did not lease.
    fn of(commit: &EpisodeCommit) -> BackgroundWork {
        BackgroundWork {
            timers: !commit.timers.is_empty(),
            activities: commit.activities.len() > commit.lease.count,
        }
    }
}

impl Engine {
    /// `traces`: where spans go, if tracing is on.
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        config: EngineConfig,
        traces: Option<Traces>,
    ) -> Engine {
        let metrics = Arc::new(Metrics::new());
        store.observe_commits(Arc::clone(&metrics) as Arc<dyn CommitObserver>);
        let affinity = match store.poll_interval() {
            Some(_) => affinity::Affinity::shared(),
            None => affinity::Affinity::alone(),
        };
        Engine {
            shared: Arc::new(Shared {
                bulk: bulk::BulkJobs::default(),
                metrics,
                traces,
                store,
                runtime,
                scheduler: Scheduler::new(config.workers),
                timers_changed: tokio::sync::Notify::new(),
                activities_changed: tokio::sync::Notify::new(),
                activity_workers: Arc::new(tokio::sync::Semaphore::new(
                    config.activity_workers.max(1),
                )),
                warm: warm::WarmCache::new(config.warm_executions, config.warm_memory_bytes),
                affinity,
                held_back: held_back::HeldBack::default(),
                config,
            }),
        }
    }

    /// Schedules every instance with queued messages, after a deploy: those
    /// put off because their orchestrator was not loaded run again.
    async fn resume_waiting_instances(&self) {
        let store = Arc::clone(&self.shared.store);
        match stored(move || store.instances_with_messages()).await {
            Ok(ids) => {
                for id in &ids {
                    self.notify(id);
                }
            }
            Err(error) => tracing::error!("cannot list instances with queued messages: {error:#}"),
        }
    }

    /// Schedules every instance with queued messages: the work a previous
    /// run of the host accepted and did not finish. Returns how many.
    pub async fn resume_unfinished_work(&self) -> anyhow::Result<usize> {
        let store = Arc::clone(&self.shared.store);
        let ids = blocking(move || {
            // No worker of a previous run is alive: its activities run again.
            store.release_activity_leases()?;
            Ok(store.instances_with_messages()?)
        })
        .await?;
        for id in &ids {
            self.notify(id);
        }
        Ok(ids.len())
    }

    /// Starts firing durable timers (overdue ones first) and running
    /// activities; both run until the process ends.
    pub fn start_background_work(&self) {
        tokio::spawn(timers::run(self.clone()));
        self.start_version_collector();
        tokio::spawn(activities::run_dispatcher(Arc::clone(&self.shared)));
        if let Some(interval) = self.shared.store.poll_interval() {
            tokio::spawn(peers::run(self.clone(), interval));
        }
    }

    /// Gives up this host's instances and leases to the other hosts of a
    /// shared database, for a clean shutdown.
    pub async fn leave(&self) -> anyhow::Result<()> {
        let store = Arc::clone(&self.shared.store);
        stored(move || store.leave()).await
    }

    /// The host's metrics, to record requests in.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The text of a metrics scrape: what the host did, and what waits
    /// now (read from the store).
    pub async fn scrape_metrics(&self) -> anyhow::Result<String> {
        let store = Arc::clone(&self.shared.store);
        // The host's own metrics are served even when the store cannot be
        // read (then `reprise_store_up` is 0).
        let counts = match stored(move || store.counts(now_millis())).await {
            Ok(counts) => Some(counts),
            Err(error) => {
                tracing::warn!("metrics without the store's counts: {error:#}");
                None
            }
        };
        let runtime = &self.shared.runtime;
        let files = runtime.files();
        let snapshot = Snapshot {
            store: counts,
            backlog: self.shared.scheduler.backlog(),
            warm_executions: self.shared.warm.len(),
            orchestrators: files.iter().map(|file| file.orchestrators.len()).sum(),
            activities: files.iter().map(|file| file.activities.len()).sum(),
            component_versions: files.len(),
        };
        Ok(self.shared.metrics.encode(&snapshot))
    }

    /// The loaded component files and what each provides.
    pub fn functions(&self) -> Vec<FunctionFile> {
        self.shared.runtime.files().to_vec()
    }

    pub fn orchestrator_names(&self) -> Vec<String> {
        self.shared.runtime.orchestrator_names()
    }

    /// Starts `name` under `id` (or a fresh ID); durable once this returns.
    /// Its first episode commits with the start, planned here (`direct.rs`).
    /// With tracing on, the instance's trace follows the caller's
    /// `traceparent` (W3C), if valid.
    pub async fn start(
        &self,
        name: &str,
        id: Option<InstanceId>,
        input: String,
        traceparent: Option<&str>,
    ) -> Result<(InstanceId, StartOutcome), EngineError> {
        let Some(version) = self.shared.runtime.current_version(name) else {
            return Err(EngineError::UnknownOrchestrator(name.to_owned()));
        };
        self.check_load()?;
        let id = id.unwrap_or_else(InstanceId::generate);
        let new = NewInstance {
            id: id.as_str().to_owned(),
            name: name.to_owned(),
            input,
            now: now_millis(),
            parent: None,
            version: Some(version),
            trace: self
                .shared
                .traces
                .as_ref()
                .map(|_| InstanceTrace::start(traceparent).to_text()),
        };
        let shared = Arc::clone(&self.shared);
        let mut claim = direct::Claim::new(&self.shared, id.as_str()).await;
        let outcome = blocking(move || {
            let episode = claim.as_mut().and_then(|claim| claim.plan_start(&new));
            let leased = episode.as_ref().and_then(DirectEpisode::leases);
            let (outcome, applied) = shared
                .store
                .start_instance(&new, episode)
                .inspect_err(|error| activities::release_if_lost(&shared, leased, error))?;
            if outcome == StartOutcome::Started {
                direct::settle(&shared, &new.id, claim, applied);
            }
            Ok(outcome)
        })
        .await?;
        Ok((id, outcome))
    }

    /// Refuses new work while too many instances wait for a worker.
    fn check_load(&self) -> Result<(), EngineError> {
        let backlog = self.shared.scheduler.backlog();
        if backlog >= self.shared.config.max_backlog {
            return Err(EngineError::Overloaded(backlog));
        }
        Ok(())
    }

    /// Queues an external event; durable once this returns `Accepted`.
    /// With the instance warm, it is applied as well (`direct.rs`).
    pub async fn raise_event(
        &self,
        id: &InstanceId,
        event_name: &str,
        payload: String,
    ) -> Result<DeliveryOutcome, EngineError> {
        self.check_load()?;
        let message = Message::Event {
            name: event_name.to_owned(),
            payload,
            accepted_at: now_millis(),
        };
        Ok(self.deliver(id, message, Delivery::MayApply).await?)
    }

    /// Queues a termination; durable once this returns `Accepted`.
    pub async fn terminate(
        &self,
        id: &InstanceId,
        reason: String,
    ) -> anyhow::Result<DeliveryOutcome> {
        self.deliver(id, Message::Terminate { reason }, Delivery::Queue)
            .await
    }

    /// Queues a suspension: from the episode that applies it, events and
    /// results wait in the inbox until a resume. Durable once `Accepted`.
    pub async fn suspend(
        &self,
        id: &InstanceId,
        reason: String,
    ) -> anyhow::Result<DeliveryOutcome> {
        self.deliver(id, Message::Suspend { reason }, Delivery::Queue)
            .await
    }

    /// Queues a resume of a suspended instance (a no-op for a running one).
    pub async fn resume(&self, id: &InstanceId, reason: String) -> anyhow::Result<DeliveryOutcome> {
        self.deliver(id, Message::Resume { reason }, Delivery::Queue)
            .await
    }

    /// Queues `message` for `id`, or (with [`Delivery::MayApply`], see
    /// `direct.rs`) applies it in a direct episode.
    async fn deliver(
        &self,
        id: &InstanceId,
        message: Message,
        delivery: Delivery,
    ) -> anyhow::Result<DeliveryOutcome> {
        let shared = Arc::clone(&self.shared);
        let instance_id = id.as_str().to_owned();
        let mut claim = match delivery {
            Delivery::MayApply => direct::Claim::for_message(&self.shared, &instance_id).await,
            Delivery::Queue => None,
        };
        blocking(move || {
            let episode = claim
                .as_mut()
                .and_then(|claim| claim.plan_message(message.clone()));
            let leased = episode.as_ref().and_then(DirectEpisode::leases);
            let (outcome, applied) = shared
                .store
                .deliver(&instance_id, &message, episode)
                .inspect_err(|error| activities::release_if_lost(&shared, leased, error))?;
            if outcome == DeliveryOutcome::Accepted {
                if !matches!(applied, Applied::Elsewhere) {
                    shared.affinity.accepted_here(&instance_id);
                }
                if matches!(applied, Applied::Queued)
                    && shared.held_back.holds(&instance_id, &message)
                {
                    // Held by a suspended instance whose last pass found
                    // nothing to end its suspension: a pass would only hold
                    // this too.
                    drop(claim);
                } else {
                    direct::settle(&shared, &instance_id, claim, applied);
                }
            }
            Ok(outcome)
        })
        .await
    }

    /// The instance, if it exists.
    pub async fn instance(&self, id: &InstanceId) -> anyhow::Result<Option<Instance>> {
        let store = Arc::clone(&self.shared.store);
        let instance_id = id.as_str().to_owned();
        stored(move || store.instance(&instance_id)).await
    }

    /// The instance and its current generation's history, if it exists.
    pub async fn instance_with_history(
        &self,
        id: &InstanceId,
    ) -> anyhow::Result<Option<(Instance, Vec<HistoryEntry>)>> {
        let store = Arc::clone(&self.shared.store);
        let instance_id = id.as_str().to_owned();
        stored(move || store.instance_with_history(&instance_id)).await
    }

    /// One page of instances matching `filter`, after `after`; the cursor
    /// of the next page if there may be more.
    pub async fn query(
        &self,
        filter: InstanceFilter,
        after: Option<PageCursor>,
        page_size: usize,
    ) -> anyhow::Result<(Vec<Instance>, Option<PageCursor>)> {
        let store = Arc::clone(&self.shared.store);
        let mut page =
            stored(move || store.query_instances(&filter, after.as_ref(), page_size + 1)).await?;
        let next = if page.len() > page_size {
            page.truncate(page_size);
            page.last().map(|last| PageCursor {
                created_at: last.created_at,
                instance_id: last.id.clone(),
            })
        } else {
            None
        };
        Ok((page, next))
    }

    /// How many instances match `filter`, counted no further than `cap`.
    pub async fn count_instances(&self, filter: InstanceFilter, cap: u64) -> anyhow::Result<u64> {
        let store = Arc::clone(&self.shared.store);
        stored(move || store.count_instances(&filter, cap)).await
    }

    /// Instances by status (each status with any), as the store keeps them.
    pub async fn instance_counts(&self) -> anyhow::Result<Vec<(RuntimeStatus, u64)>> {
        let store = Arc::clone(&self.shared.store);
        stored(move || store.instance_counts()).await
    }

    /// Every stored component version, with its unfinished instances.
    pub async fn component_versions(&self) -> anyhow::Result<Vec<ComponentVersion>> {
        let store = Arc::clone(&self.shared.store);
        stored(move || store.component_versions()).await
    }

    /// Deletes every finished instance matching `filter`, a batch per
    /// transaction so that other requests are served in between; tells
    /// `purged_batch` how many each batch deleted.
    pub async fn purge_matching(
        &self,
        filter: InstanceFilter,
        mut purged_batch: impl FnMut(usize),
    ) -> anyhow::Result<usize> {
        const BATCH: usize = 500;
        let mut deleted = 0;
        loop {
            let store = Arc::clone(&self.shared.store);
            let batch_filter = filter.clone();
            let purged = stored(move || store.purge_finished(&batch_filter, BATCH)).await?;
            purged_batch(purged);
            deleted += purged;
            if purged < BATCH {
                if deleted > 0 {
                    tracing::info!(deleted, "purged instances");
                }
                return Ok(deleted);
            }
            tracing::debug!(deleted, "purging instances");
            tokio::task::yield_now().await;
        }
    }

    /// Starts the orchestrator of `id` again with its original input, under
    /// a fresh ID or (if `new_id` is false and it has finished) the same one.
    /// `None` if there is no such instance.
    pub async fn restart(
        &self,
        id: &InstanceId,
        new_id: bool,
        traceparent: Option<&str>,
    ) -> Result<Option<(InstanceId, StartOutcome)>, EngineError> {
        let store = Arc::clone(&self.shared.store);
        let instance_id = id.as_str().to_owned();
        let Some(instance) = stored(move || store.instance(&instance_id)).await? else {
            return Ok(None);
        };
        let target = if new_id { None } else { Some(id.clone()) };
        let input = instance.original_input;
        self.start(&instance.name, target, input, traceparent)
            .await
            .map(Some)
    }

    /// Rewinds a failed instance to its last good point (see `rewind.rs`).
    pub async fn rewind(&self, id: &InstanceId, reason: String) -> anyhow::Result<RewindOutcome> {
        let store = Arc::clone(&self.shared.store);
        let instance_id = id.as_str().to_owned();
        let shared = Arc::clone(&self.shared);
        let (outcome, notify) = blocking(move || {
            let Some((instance, history)) = store.instance_with_history(&instance_id)? else {
                return Ok((RewindOutcome::NotFound, Vec::new()));
            };
            if instance.status != RuntimeStatus::Failed {
                return Ok((RewindOutcome::NotFailed(instance.status), Vec::new()));
            }
            if rewind::used_entities(&history) {
                return Ok((RewindOutcome::UsedEntities, Vec::new()));
            }
            // No host runs a failed instance: this one takes it.
            store.seize(&instance_id)?;
            let commit = rewind::plan(instance, history, reason, now_millis());
            // A rewind leases nothing (`rewind::plan`).
            match store.commit_episode(&commit)? {
                CommitOutcome::Committed(follow_up) => {
                    shared.wake_background_work(&commit);
                    Ok((RewindOutcome::Rewound, follow_up.notify))
                }
                // Failed instances change only by a purge or a new start.
                CommitOutcome::Stale | CommitOutcome::LateMessages => {
                    Ok((RewindOutcome::Changed, Vec::new()))
                }
            }
        })
        .await?;
        for other in notify {
            self.notify(&other);
        }
        Ok(outcome)
    }

    pub async fn purge(&self, id: &InstanceId) -> anyhow::Result<PurgeOutcome> {
        let store = Arc::clone(&self.shared.store);
        let instance_id = id.as_str().to_owned();
        stored(move || store.purge(&instance_id)).await
    }

    fn notify(&self, id: &str) {
        schedule(&self.shared, id);
    }
}

/// How a message from the API reaches its instance.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    /// Applied in the transaction that accepts it, if the instance's
    /// execution is warm (an event); queued otherwise.
    MayApply,
    /// Queued for the instance's next episode (a termination, a
    /// suspension or a resume: host decisions that need no guest).
    Queue,
}

/// Messages one episode applies at most. An instance flooded with events
/// costs what it consumes, in episodes of this many: not its whole inbox
/// on every episode, nor (for an orchestrator that continues as new after
/// each event) the rest of the inbox fed again to every generation.
const MESSAGES_PER_EPISODE: usize = 256;

/// Runs an episode for `id` over its oldest queued messages (and another
/// pass if more are queued), then schedules the instances its commit sent
/// messages to.
async fn run_episodes(shared: Arc<Shared>, id: String) -> anyhow::Result<()> {
    let store = Arc::clone(&shared.store);
    let runtime = Arc::clone(&shared.runtime);
    let background = Arc::clone(&shared);
    let instance_id = id.clone();
    let (notify, handoff, more) = blocking(move || {
        let shared = background;
        shared.held_back.forget(&id);
        let mut max_messages = MESSAGES_PER_EPISODE;
        // A commit is refused when messages arrived after a finishing episode
        // read the inbox: plan again with them. Bounded, since each retry
        // means another client got a 202 in between.
        for _ in 0..1_000 {
            // Another host runs it (and was woken for it).
            if !store.claim(&id)? {
                shared.affinity.forget(&id);
                return Ok(Default::default());
            }
            let (work, warm) = match load(&shared, &id, max_messages)? {
                Loaded::Nothing => return Ok(Default::default()),
                Loaded::EffectsPending => {
                    // A staged commit's (its pass failed, or the host died).
                    drain_effects(&shared, &id)?;
                    continue;
                }
                Loaded::Work(work, warm) => (work, warm),
            };
            // What this episode logs says which instance, orchestrator,
            // version and generation it is about.
            let span = episode::span(&work.instance);
            let _in_episode = span.enter();
            // A full batch (a suspended instance's may add the message that
            // resumes it, from beyond: `WorkRead::max_messages`).
            let more = work.messages.len() >= max_messages;
            let history_len = work.history_len;
            // Suspended, with nothing read that would end it: all that
            // waits is held until a resume or termination arrives.
            let held = held_until_resumed(&work.instance, &work.messages);
            let Some(episode::Planned {
                mut commit,
                live,
                report,
            }) = plan(&runtime, &shared.config.step_limits, warm, work)?
            else {
                // Nothing to do: held by a suspended instance (the read
                // brought a resume from beyond its batch, if one is queued),
                // or its orchestrator is not loaded.
                if held {
                    shared.held_back.mark(&id);
                }
                return Ok(Default::default());
            };
            staging::stage_if_large(store.as_ref(), &mut commit, history_len)?;
            // A staged commit's activities are queued later, not leased.
            let workers = match commit.staging {
                None => Some(activities::Reserved::for_commit(&shared, &mut commit)),
                Some(_) => None,
            };
            let committed = store.commit_episode(&commit).inspect_err(|error| {
                activities::release_if_lost(&shared, LeasedActivities::of(&commit), error)
            })?;
            match committed {
                CommitOutcome::Committed(follow_up) => {
                    tracing::debug!(instance = %id, status = %commit.updated.status, "episode committed");
                    shared.record(&shared.record_of(&commit, Some(report)));
                    if commit.staging.is_some() {
                        drain_effects(&shared, &id)?;
                    }
                    let finished = commit.updated.status.is_terminal();
                    if finished {
                        shared.affinity.forget(&id);
                    }
                    let handed_over = !finished && !more && hand_over_if_moving(&shared, &id);
                    // Only an execution whose episode committed stays warm,
                    // on the host that runs the instance.
                    if let Some(live) = live.filter(|_| !handed_over) {
                        shared.warm.keep(&id, live);
                    }
                    shared.wake_background_work(&commit);
                    let handoff = workers.map(|workers| (workers, follow_up.leased));
                    return Ok((follow_up.notify, handoff, more));
                }
                // An episode that finishes the instance consumes everything
                // queued: it must have seen it all.
                CommitOutcome::LateMessages => max_messages = usize::MAX,
                CommitOutcome::Stale => {
                    tracing::warn!(instance = %id, "instance changed during its episode; running it again");
                }
            }
        }
        anyhow::bail!("instance {id}: gave up after 1000 attempts to commit an episode")
    })
    .await?;
    if more {
        // Owned by this runner: it goes around once more.
        schedule(&shared, &instance_id);
    }
    for other in notify {
        schedule(&shared, &other);
    }
    // Last: the runner gives up the instance as this returns, long before
    // an activity's result can come back for it.
    if let Some((workers, leased)) = handoff {
        workers.start(&shared, leased);
    }
    Ok(())
}

/// Hands `id` over to the host its requests keep arriving at, if they do
/// (`affinity.rs`); whether it did. Only a loss of speed if it cannot:
/// this host keeps running it.
fn hand_over_if_moving(shared: &Shared, id: &str) -> bool {
    let Some(host) = shared.affinity.moves(id) else {
        return false;
    };
    match shared.store.hand_over(id, &host) {
        Ok(handed_over) => {
            if handed_over {
                shared.metrics.instance_handed_over();
                tracing::debug!(instance = %id, to = host, "handed over: its requests arrive there");
            }
            handed_over
        }
        Err(error) => {
            tracing::warn!(instance = %id, "cannot hand the instance over: {error:#}");
            false
        }
    }
}

/// Plans the episode of `work`: an entity's, or an orchestration's.
fn plan(
    runtime: &Runtime,
    limits: &episode::StepLimits,
    warm: Option<WarmExecution>,
    work: WorkItem,
) -> anyhow::Result<Option<episode::Planned>> {
    if EntityId::is_entity(&work.instance.id) {
        return entity_episode::plan(runtime, limits, work, now_millis()).map(Some);
    }
    episode::plan(runtime, limits, warm, work, now_millis(), None)
}

/// What an episode found to work on.
// Short-lived, once per episode: the size of its small variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Loaded {
    /// No message queued.
    Nothing,
    /// A staged commit's effects must be applied first.
    EffectsPending,
    /// Messages, and the warm execution if it saw exactly this history.
    Work(WorkItem, Option<WarmExecution>),
}

/// Reads `id`'s oldest `max_messages` queued messages, with its history
/// unless its warm execution (taken out of the cache: one an episode does
/// not use is dropped, so none outlives a change it did not see) has
/// seen it.
fn load(shared: &Shared, id: &str, max_messages: usize) -> anyhow::Result<Loaded> {
    let warm = shared.warm.take(id);
    let read = WorkRead {
        history: warm.is_none(),
        max_messages,
    };
    let Some(work) = shared.store.load_work(id, read)? else {
        return Ok(Loaded::Nothing);
    };
    if work.effects_pending {
        return Ok(Loaded::EffectsPending);
    }
    shared.ensure_version(work.instance.version.as_deref());
    match warm {
        Some(warm) if warm.matches(&work) => Ok(Loaded::Work(work, Some(warm))),
        None => Ok(Loaded::Work(work, None)),
        Some(_) => {
            let read = WorkRead {
                history: true,
                max_messages,
            };
            Ok(match shared.store.load_work(id, read)? {
                Some(work) if !work.effects_pending => Loaded::Work(work, None),
                Some(_) => Loaded::EffectsPending,
                None => Loaded::Nothing,
            })
        }
    }
}

/// Applies the effects a staged commit of `id` left pending, scheduling
/// the instances they reach as it goes.
fn drain_effects(shared: &Arc<Shared>, id: &str) -> anyhow::Result<()> {
    let store = Arc::clone(&shared.store);
    let drained = staging::drain_effects(store.as_ref(), id, |notify| {
        for other in notify {
            schedule(shared, &other);
        }
    })?;
    if drained {
        shared.wake(BackgroundWork::ANY);
    }
    Ok(())
}

/// Makes sure `id`'s queued messages will be applied.
fn schedule(shared: &Arc<Shared>, id: &str) {
    let runner = Arc::clone(shared);
    let setter = Arc::clone(shared);
    shared.scheduler.notify(
        id,
        move |id| run_episodes(Arc::clone(&runner), id),
        move |id, error| set_aside::set_aside(Arc::clone(&setter), id, error),
    );
}

/// Runs blocking store or guest work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await?
}

/// [`blocking`] for one store call, its [`StoreError`] passed on as is.
async fn stored<T: Send + 'static>(
    call: impl FnOnce() -> crate::store::StoreResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    blocking(move || Ok(call()?)).await
}
