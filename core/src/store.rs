//! Durable state: instances, their histories, and their inboxes.
//!
//! The engine talks to a [`Store`]; the backends are crates of their own
//! (`reprise-store-sqlite`, the embedded default).
//! The store knows nothing about HTTP or wasmtime, and decides nothing about
//! orchestration beyond the few atomic checks that must happen inside its
//! transactions (singleton starts, delivery to a live instance, late messages).
//!
//! Every method is synchronous and may block on disk: call it from a blocking
//! thread. Every method that returns `Ok` has committed durably. A failed
//! call returns a [`StoreError`], which says whether anything was written
//! and whether the same call is worth trying again. A conflict (an ID
//! another instance holds, a stale episode) or a missing instance is not
//! an error but an outcome the method returns ([`StartOutcome`],
//! [`CommitOutcome`], [`DeliveryOutcome`], `None`), and races a backend
//! can win by trying again (serialization failures, deadlocks) it tries
//! again itself.

use crate::model::{
    Failure, HistoryEntry, Instance, Message, Millis, ParentTask, QueuedMessage, RuntimeStatus,
};

/// The database cannot take writes now (its disk is full, its file or
/// file system is read-only, another process holds it): nothing was
/// written, and the same call may succeed once that is fixed. A backend
/// puts it in the chain of the errors it returns.
#[derive(Debug, thiserror::Error)]
#[error("the database cannot be written now ({0}); nothing was changed, retry later")]
pub struct Unavailable(pub String);

/// The connection to the database was lost while it committed: the
/// write may or may not have been applied. A backend puts it in the chain
/// of the errors it returns.
#[derive(Debug, thiserror::Error)]
#[error("the commit's outcome is unknown (it may have been applied): {0}")]
pub struct OutcomeUnknown(pub String);

/// Why a store call failed, as its caller must act on it. Each variant
/// holds the backend's error, with its whole chain for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing was written, and the same call may succeed later: the
    /// database cannot take writes now ([`Unavailable`] is in the chain,
    /// saying why). Wait and retry.
    #[error(transparent)]
    Unavailable(anyhow::Error),
    /// The write may or may not have been applied ([`OutcomeUnknown`]).
    /// Read before deciding again: every write is fenced (a revision, an
    /// ID, a queued row's key), so doing the same work again is safe.
    #[error(transparent)]
    OutcomeUnknown(anyhow::Error),
    /// Anything else: a fault (a bug, a row that does not read); nothing
    /// was written, and trying again will not help.
    #[error(transparent)]
    Fault(anyhow::Error),
}

/// What a store call returns.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Why the database cannot be written now, if that is the error.
    pub fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            StoreError::Unavailable(error) => marker(error),
            _ => None,
        }
    }

    /// The [`StoreError`] `error` is or holds, if any: a store error the
    /// engine passed on with context.
    pub fn of(error: &anyhow::Error) -> Option<&StoreError> {
        marker(error)
    }
}

/// A backend's error, classified by the markers in its chain.
impl From<anyhow::Error> for StoreError {
    fn from(error: anyhow::Error) -> StoreError {
        if error.is::<StoreError>() {
            return error.downcast().expect("checked above");
        }
        if marker::<Unavailable>(&error).is_some() {
            StoreError::Unavailable(error)
        } else if marker::<OutcomeUnknown>(&error).is_some() {
            StoreError::OutcomeUnknown(error)
        } else {
            StoreError::Fault(error)
        }
    }
}

/// The `T` in `error`'s chain, if there is one.
fn marker<T: std::error::Error + Send + Sync + 'static>(error: &anyhow::Error) -> Option<&T> {
    // `downcast_ref` sees through `context` layers, `chain` through sources.
    error
        .downcast_ref()
        .or_else(|| error.chain().find_map(|cause| cause.downcast_ref()))
}

/// A request to start a generation under an instance ID.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    pub id: String,
    pub name: String,
    /// JSON.
    pub input: String,
    pub now: Millis,
    /// Set when a parent orchestration starts this instance.
    pub parent: Option<ParentTask>,
    /// The component version it runs on (see [`Instance::version`]).
    pub version: Option<String>,
    /// Its trace context, if traced (the host's format; the store keeps
    /// it in the row as it is, and a new start under the ID replaces it).
    pub trace: Option<String>,
}

impl NewInstance {
    /// Whether, as an episode's effect, it starts only under an ID no
    /// instance has (finished or not): an instance an orchestrator starts
    /// on its own, with no parent, must never replace one, or a starter
    /// that takes the action again would run it again and lose its
    /// history.
    pub fn starts_only_if_absent(&self) -> bool {
        self.parent.is_none()
    }

    /// The instance row a start writes for generation `generation` (the
    /// first under an ID is 0).
    pub fn started(&self, generation: u32) -> Instance {
        Instance {
            id: self.id.clone(),
            name: self.name.clone(),
            status: RuntimeStatus::Pending,
            generation,
            input: self.input.clone(),
            original_input: self.input.clone(),
            output: None,
            custom_status: None,
            created_at: self.now,
            updated_at: self.now,
            parent: self.parent.clone(),
            version: self.version.clone(),
            // A new ID's; a new start under an old one continues its count
            // (see `Instance::revision`).
            revision: 0,
            trace: self.trace.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    /// The ID belongs to an instance that has not finished.
    Conflict(RuntimeStatus),
}

/// What happened to a message addressed to an existing instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Accepted,
    NotFound,
    /// The instance finished; it will never read the message.
    Finished(RuntimeStatus),
    /// A termination is already queued; nothing after it would be read.
    Terminating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeOutcome {
    Purged,
    NotFound,
    NotFinished(RuntimeStatus),
}

/// Which instances a query or a bulk purge selects; every field but
/// `order` narrows it.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    /// The orchestrator's name, exactly.
    pub name: Option<String>,
    /// The order of a query's pages (a purge ignores it).
    pub order: PageOrder,
    /// Created at or after.
    pub created_from: Option<Millis>,
    /// Created at or before.
    pub created_to: Option<Millis>,
    /// Any of these statuses; empty means any status.
    pub statuses: Vec<RuntimeStatus>,
    pub id_prefix: Option<String>,
    /// Orchestrations (the default) or entities.
    pub kind: InstanceKind,
}

/// The two kinds of instances: orchestrations, and entities (whose IDs
/// begin with `@`, see [`crate::entity`]). A filter selects one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InstanceKind {
    #[default]
    Orchestrations,
    Entities,
}

impl InstanceKind {
    /// The SQL condition (the same in SQLite and PostgreSQL) on
    /// `instance_id` that selects this kind.
    pub fn sql_condition(self) -> &'static str {
        match self {
            InstanceKind::Orchestrations => "instance_id NOT LIKE '@%'",
            InstanceKind::Entities => "instance_id LIKE '@%'",
        }
    }
}

impl InstanceFilter {
    /// Whether it narrows by status and by nothing else (then the kept
    /// counts of [`Store::instance_counts`] tell how many it selects).
    pub fn by_status_only(&self) -> bool {
        !self.statuses.is_empty()
            && self.name.is_none()
            && self.id_prefix.is_none()
            && self.created_from.is_none()
            && self.created_to.is_none()
    }
}

/// Which way a query walks creation order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PageOrder {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// A stored component version and what still depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVersion {
    /// `sha256:` and the digest of its bytes.
    pub version: String,
    /// When it was first stored: since when it has been served.
    pub stored_at: Millis,
    /// When the functions folder stopped serving it, if it has.
    pub retired_at: Option<Millis>,
    /// Unfinished instances pinned to it.
    pub live_instances: u64,
}

/// Where a page of a query ended. Queries are ordered by creation time,
/// then ID, so a walk through all pages sees every instance that existed
/// when it began exactly once, however many are created meanwhile (an
/// instance started again under its ID counts as created anew).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: Millis,
    pub instance_id: String,
}

/// Everything an episode needs, read in one transaction.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub instance: Instance,
    /// The current generation's history (empty if not asked for).
    pub history: Vec<HistoryEntry>,
    /// How many entries the current generation's history has.
    pub history_len: usize,
    /// The oldest messages queued for the instance, as many as asked for
    /// (see [`WorkRead::max_messages`]); empty only if `effects_pending`.
    pub messages: Vec<QueuedMessage>,
    /// Effects of a staged commit are pending: apply them
    /// ([`Store::apply_pending_effects`]) before planning anything.
    pub effects_pending: bool,
}

/// What [`Store::load_work`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkRead {
    /// The current generation's history; else only its length is read
    /// (for an episode whose live execution has seen it already).
    pub history: bool,
    /// Queued messages to read at most, oldest first; but every queued one
    /// while a termination is queued, since an episode must apply the
    /// termination and with it consumes them all. And for a suspended
    /// instance whose batch is full and ends no suspension (no message in
    /// it does, [`Message::ends_suspension`]), if a message beyond the
    /// batch does, the batch is followed by the messages beyond it that
    /// act while suspended ([`Message::acts_while_suspended`]) up to that
    /// first one: the events held in between stay queued for the episodes
    /// after a resume, and a resume is found, and applied in its order
    /// among what acts, however many events wait ahead of it, without
    /// reading them. (A batch that ends the suspension itself is applied
    /// in order, and nothing from beyond it may come before its rest.)
    pub max_messages: usize,
}

impl WorkRead {
    /// The history and every queued message.
    pub const ALL: WorkRead = WorkRead {
        history: true,
        max_messages: usize::MAX,
    };
}

/// Whether `instance` is suspended and none of `messages` (read for it)
/// ends that ([`Message::ends_suspension`]): all of them are held, or act
/// without ending it. A store then reads beyond a full batch
/// ([`WorkRead::max_messages`]); the engine, finding nothing to do, waits
/// for a message that may end it.
pub fn held_until_resumed(instance: &Instance, messages: &[QueuedMessage]) -> bool {
    instance.status == RuntimeStatus::Suspended
        && !messages
            .iter()
            .any(|queued| queued.message.ends_suspension())
}

/// How an episode changes the history of the instance.
#[derive(Debug, Clone)]
pub enum HistoryChange {
    /// Same generation: add entries after the existing ones.
    Append(Vec<HistoryEntry>),
    /// The episode moved to a new generation (continue-as-new): its history
    /// replaces the old one.
    Replace(Vec<HistoryEntry>),
}

/// The outcome of one episode, committed in one transaction.
#[derive(Debug, Clone)]
pub struct EpisodeCommit {
    /// The instance as the episode read it; the commit is refused if the
    /// row's revision changed meanwhile (it cannot, while the engine runs
    /// one episode per instance at a time, but the store does not take
    /// that on faith).
    pub read: Instance,
    /// The instance as the episode left it: revision `read.revision + 1`
    /// (see [`Instance::successor`]).
    pub updated: Instance,
    pub history: HistoryChange,
    /// The queued messages the episode applied (or dropped), by sequence
    /// number: deleted in its transaction. Named one by one, not as a
    /// prefix: where sequence numbers are not handed out in commit order
    /// (several writers), a message below the highest consumed one may
    /// not have been read. A commit that finishes the instance is refused
    /// (`LateMessages`) while any other message is queued for it.
    pub consumed: Vec<i64>,
    /// Durable timers created by the episode: (task ID, due time), in the
    /// generation of `updated`. Timers of any other generation are dropped.
    pub timers: Vec<(u64, Millis)>,
    /// Activities scheduled by the episode, in the generation of
    /// `updated`; likewise for other generations.
    pub activities: Vec<ScheduledActivity>,
    /// The first `lease.count` of `activities` are leased as they are
    /// inserted, to the engine that committed them: it runs them as soon as
    /// the commit lands, with no dispatcher and no lease transaction.
    pub lease: ActivityLease,
    /// Sub-orchestrations to start (`Ok`; with no parent, an instance the
    /// orchestrator starts on its own, and nothing happens if any instance,
    /// finished or not, has its ID: [`NewInstance::starts_only_if_absent`]),
    /// or to report as failed to start (`Err`, as a message to this
    /// instance).
    pub children: Vec<Result<NewInstance, (ParentTask, Failure)>>,
    /// Events for other instances: (instance ID, name, JSON payload).
    /// Delivered if the target is live, dropped otherwise.
    pub sent_events: Vec<(String, String, String)>,
    /// Messages for other instances, in order: entity operations, locks
    /// and releases, and entities' answers to orchestrations. Queued for
    /// a live target; a message for an entity
    /// ([`Message::addresses_entity`]) to an ID with no row first creates
    /// the entity's row ([`NewInstance::entity`]); any other is dropped if
    /// its target is missing or finished.
    pub messages: Vec<(String, Message)>,
    /// Timers of the generation of `updated` the episode cancelled (task
    /// IDs): deleted, so they never fire.
    pub cancelled_timers: Vec<u64>,
    /// Messages for this instance itself, queued after everything already
    /// in its inbox: what a rewind cut from the history, to apply again.
    pub requeued: Vec<Message>,
    /// Set by the episode of an entity it leaves empty (no state, no lock,
    /// nothing waiting for one): the commit deletes its row with its
    /// history, unless a message is queued for it (then the row is written
    /// as usual, and a later episode removes it). A message for it
    /// afterwards creates it anew.
    pub removes_empty_entity: bool,
    /// Set when the commit is too large for one short transaction: its
    /// history entries and effects were written ahead by
    /// [`Store::stage_history`] and [`Store::stage_effects`], invisibly; the
    /// commit makes the history visible and leaves the effects pending, for
    /// [`Store::apply_pending_effects`] to apply a batch per transaction.
    pub staging: Option<Staging>,
}

/// An activity an episode schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledActivity {
    pub task_id: u64,
    pub name: String,
    /// JSON.
    pub input: String,
    /// Which attempt of a call under a retry policy (1 without one): the
    /// activity is told.
    pub attempt: u32,
}

/// How a large commit was written ahead (see [`EpisodeCommit::staging`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staging {
    /// Tells this attempt's effects from those of an abandoned one.
    pub token: i64,
}

/// What a commit does to other instances and to the queues, one at a
/// time: the rows of a staged commit's pending effects, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A sub-orchestration (or, with no parent, an instance started on
    /// its own) to start, or a child's failure to start to report.
    Child(Result<NewInstance, (ParentTask, Failure)>),
    /// An event for another instance, delivered if it is live then.
    Send {
        target: String,
        name: String,
        payload: String,
        accepted_at: Millis,
    },
    /// A message for another instance (see [`EpisodeCommit::messages`]).
    Deliver { target: String, message: Message },
    /// An activity to queue, if its generation still runs.
    Activity {
        generation: u32,
        task_id: u64,
        name: String,
        input: String,
        attempt: u32,
    },
    /// A durable timer to set, if its generation still runs.
    Timer {
        generation: u32,
        task_id: u64,
        fire_at: Millis,
    },
}

impl EpisodeCommit {
    /// Its effects on other instances and on the queues, in the order a
    /// staged commit applies them: children, sent events, messages,
    /// activities, timers.
    pub fn effects(&self) -> Vec<Effect> {
        let (generation, now) = (self.updated.generation, self.updated.updated_at);
        let children = self.children.iter().cloned().map(Effect::Child);
        let sends = self
            .sent_events
            .iter()
            .map(|(target, name, payload)| Effect::Send {
                target: target.clone(),
                name: name.clone(),
                payload: payload.clone(),
                accepted_at: now,
            });
        let messages = self
            .messages
            .iter()
            .map(|(target, message)| Effect::Deliver {
                target: target.clone(),
                message: message.clone(),
            });
        let activities = self.activities.iter().map(|activity| Effect::Activity {
            generation,
            task_id: activity.task_id,
            name: activity.name.clone(),
            input: activity.input.clone(),
            attempt: activity.attempt,
        });
        let timers = self.timers.iter().map(|&(task_id, fire_at)| Effect::Timer {
            generation,
            task_id,
            fire_at,
        });
        children
            .chain(sends)
            .chain(messages)
            .chain(activities)
            .chain(timers)
            .collect()
    }

    /// The message that tells the parent this instance finished, and the
    /// parent's ID: due when the commit finishes a sub-orchestration. A
    /// child that failed with an error of its own hands the parent that
    /// error (its message, kind and retryability), as an activity does.
    pub fn report_to_parent(&self) -> Option<(String, Message)> {
        let updated = &self.updated;
        if !self.finishes() {
            return None;
        }
        let parent = updated.parent.as_ref()?;
        let output = updated.output.clone().unwrap_or_else(|| "null".to_owned());
        let message = |status| format!("{status}: {}", output.trim_matches('"'));
        let result = match updated.status {
            RuntimeStatus::Completed => Ok(output.clone()),
            RuntimeStatus::Terminated => Err(Failure::permanent(
                Failure::TERMINATED,
                message(RuntimeStatus::Terminated),
            )),
            status => Err(self
                .own_failure()
                .unwrap_or_else(|| Failure::new(Failure::FAILED, message(status)))),
        };
        let message = Message::SubOrchestrationDone {
            generation: parent.generation,
            id: parent.task_id,
            result,
        };
        Some((parent.instance_id.clone(), message))
    }

    /// The failure the orchestrator failed with by itself (an error it
    /// returned, with its kind and retryability), if this commit records
    /// one; `None` when it failed otherwise (a trap, a limit).
    fn own_failure(&self) -> Option<Failure> {
        self.new_entries()
            .iter()
            .rev()
            .find_map(|entry| match entry {
                HistoryEntry::ExecutionFailed {
                    error,
                    details: Some(details),
                    ..
                } => Some(Failure::recorded(error, Some(details))),
                _ => None,
            })
    }

    /// The termination to queue for each live child: due when the commit
    /// terminates the instance.
    pub fn terminates_children(&self) -> Option<Message> {
        (self.finishes() && self.updated.status == RuntimeStatus::Terminated).then(|| {
            Message::Terminate {
                reason: format!("its parent {} was terminated", self.updated.id),
            }
        })
    }

    /// Whether the commit finishes the instance (it was live when read).
    pub fn finishes(&self) -> bool {
        self.updated.status.is_terminal() && !self.read.status.is_terminal()
    }

    /// The history entries it adds.
    pub fn new_entries(&self) -> &[HistoryEntry] {
        match &self.history {
            HistoryChange::Append(entries) | HistoryChange::Replace(entries) => entries,
        }
    }

    /// A commit that consumes the messages `consumed`, changes the row
    /// from `read` to `updated`, adds `entries` to the current
    /// generation's history, and starts nothing.
    pub fn consuming(
        read: Instance,
        updated: Instance,
        entries: Vec<HistoryEntry>,
        consumed: Vec<i64>,
    ) -> EpisodeCommit {
        EpisodeCommit {
            read,
            updated,
            history: HistoryChange::Append(entries),
            consumed,
            timers: Vec::new(),
            activities: Vec::new(),
            lease: ActivityLease::default(),
            children: Vec::new(),
            sent_events: Vec::new(),
            messages: Vec::new(),
            cancelled_timers: Vec::new(),
            requeued: Vec::new(),
            removes_empty_entity: false,
            staging: None,
        }
    }
}

/// Of `count` entries to stage from `first_seq` on in `generation`, the
/// ones (offsets) that may be written while the instance is at `current`
/// (its generation and history length; `None`: it has no row): those
/// beyond its visible history, none for a generation it has left, none
/// for an instance that is gone.
pub fn stageable(
    generation: u32,
    first_seq: usize,
    count: usize,
    current: Option<(u32, usize)>,
) -> std::ops::Range<usize> {
    match current {
        Some((at, _)) if at < generation => 0..count,
        Some((at, visible)) if at == generation => {
            visible.saturating_sub(first_seq).min(count)..count
        }
        _ => 0..0,
    }
}

/// What follows when `new` cannot start because its ID belongs to an
/// instance that has not finished (in `status`): a child's parent is told
/// (see [`child_conflict`]); an instance an orchestrator started on its own
/// simply does not start.
pub fn start_conflict(new: &NewInstance, status: RuntimeStatus) -> Option<Message> {
    let parent = new.parent.as_ref()?;
    Some(child_conflict(parent, &new.id, status))
}

/// The message that tells `parent` its sub-orchestration `child` could
/// not start: the ID belongs to an instance that has not finished.
pub fn child_conflict(parent: &ParentTask, child: &str, status: RuntimeStatus) -> Message {
    Message::SubOrchestrationDone {
        generation: parent.generation,
        id: parent.task_id,
        result: Err(Failure::permanent(
            Failure::CONFLICT,
            format!("an instance with ID '{child}' already exists and is {status}"),
        )),
    }
}

/// An episode the engine planned from state it holds in memory (a warm
/// execution, or a start), committed in the same transaction as the
/// message it applies instead of queuing the message for a later episode:
/// one transaction and no read where a queued message costs two and a read.
///
/// The store applies it only if the instance is still exactly what it was
/// planned on (its row's revision is `commit.read`'s, its current generation has
/// `history_len` entries, nothing is queued for it); otherwise it queues
/// the message as usual, so order and "nothing lost" hold either way.
#[derive(Debug, Clone)]
pub struct DirectEpisode {
    pub commit: EpisodeCommit,
    pub history_len: usize,
}

impl DirectEpisode {
    /// What its commit leases ([`LeasedActivities::of`]).
    pub fn leases(&self) -> Option<LeasedActivities> {
        LeasedActivities::of(&self.commit)
    }
}

/// Activities leased in the commit that schedules them (see
/// [`EpisodeCommit::lease`]); none by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityLease {
    pub count: usize,
    /// When the lease begins, on the host's clock.
    pub from: Millis,
    /// How long it lasts.
    pub length: Millis,
}

impl ActivityLease {
    /// When the lease ends, on the host's clock. A store several hosts
    /// share measures a lease on its own clock instead (see
    /// [`Store::claim_activities`]).
    pub fn until(&self) -> Millis {
        self.from + self.length
    }
}

/// The activities a commit leases ([`EpisodeCommit::lease`]), named so
/// that they can be released if the commit's outcome is unknown
/// ([`OutcomeUnknown`]): if it landed, they are leased to this engine and
/// no worker of it runs them. See [`Store::release_lost_leases`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedActivities {
    pub instance_id: String,
    pub generation: u32,
    pub task_ids: Vec<u64>,
    /// The commit's lease: [`ActivityLease::from`] names it.
    pub from: Millis,
    pub length: Millis,
}

impl LeasedActivities {
    /// What `commit` leases; `None` if nothing.
    pub fn of(commit: &EpisodeCommit) -> Option<LeasedActivities> {
        if commit.lease.count == 0 {
            return None;
        }
        Some(LeasedActivities {
            instance_id: commit.updated.id.clone(),
            generation: commit.updated.generation,
            task_ids: commit
                .activities
                .iter()
                .take(commit.lease.count)
                .map(|activity| activity.task_id)
                .collect(),
            from: commit.lease.from,
            length: commit.lease.length,
        })
    }
}

/// What a committed episode leaves for the engine to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUp {
    /// The other instances the commit sent messages to (children, event
    /// targets, the parent), to be scheduled.
    pub notify: Vec<String>,
    /// The activities leased as they were inserted, to run.
    pub leased: Vec<ActivityWork>,
}

/// What became of a message offered with a [`DirectEpisode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Queued in the inbox: an episode must run for the instance.
    Queued,
    /// Applied by the direct episode, which committed.
    Directly(FollowUp),
    /// Queued for an instance another live host runs, which the store
    /// has told: nothing to schedule here (a backend of several hosts).
    Elsewhere,
}

/// An activity to run, leased to one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityWork {
    /// Identifies the queued activity, to complete it.
    pub key: i64,
    pub instance_id: String,
    pub generation: u32,
    pub task_id: u64,
    pub name: String,
    pub input: String,
    /// Which attempt of a call under a retry policy (see
    /// [`ScheduledActivity::attempt`]).
    pub attempt: u32,
    /// The scheduling instance's component version: the activity runs from
    /// it if it exports the activity.
    pub version: Option<String>,
    /// The scheduling instance's trace context ([`Instance::trace`]): the
    /// activity's span goes under the instance's.
    pub trace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written.
    Committed(FollowUp),
    /// The episode finished the instance, but messages arrived after it read
    /// its inbox. Nothing was written: run the episode again with them, so no
    /// accepted message is ever left behind a finished instance.
    LateMessages,
    /// The instance row changed since the episode read it. Nothing was written.
    Stale,
}

/// What a store holds that waits, counted at one moment (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Instances by status, for each status with any.
    pub instances: Vec<(RuntimeStatus, u64)>,
    /// Messages queued for instances, not applied yet.
    pub messages: u64,
    /// Durable timers not fired yet.
    pub timers: u64,
    /// Activities waiting for a worker.
    pub activities_waiting: u64,
    /// Activities a worker holds the lease of.
    pub activities_leased: u64,
}

/// Told of each transaction a store commits for its writes, several of
/// which may share one (group commit): with SQLite every write (all go
/// through its writer), with PostgreSQL the hot ones (starts, deliveries,
/// episode commits, activity results; the time includes waiting for a
/// connection). For metrics; called on the store's own threads, so it
/// must be quick.
pub trait CommitObserver: Send + Sync + 'static {
    /// A transaction of `writes` writes committed `took` after it began.
    fn committed(&self, writes: usize, took: std::time::Duration);
}

/// Another host asking this one to run an instance's episodes
/// ([`Store::on_wake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeUp<'a> {
    pub instance: &'a str,
    /// The host that accepted a request for the instance (an event, a
    /// signal) and queued it, when that is why; `None` for other work (a
    /// message from another instance, a timer, a claim).
    pub accepted_by: Option<&'a str>,
}

/// Durable storage for instances. See the module docs.
pub trait Store: Send + Sync + 'static {
    /// Starts a generation under `new.id` and queues its start message, unless
    /// an unfinished instance holds the ID. Check and insert are one
    /// transaction, with `direct` (the first episode, planned on
    /// [`NewInstance::started`]) applied in it if it still fits.
    fn start_instance(
        &self,
        new: &NewInstance,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<(StartOutcome, Applied)>;

    /// Queues `message` (an event, a termination, a suspend or resume) for
    /// a live instance with no termination queued, or applies it by
    /// `direct` in the same transaction. A message for an entity
    /// ([`Message::addresses_entity`]) creates the entity's row first if
    /// it has none ([`NewInstance::entity`]; `id` is `@name@key`).
    fn deliver(
        &self,
        id: &str,
        message: &Message,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<(DeliveryOutcome, Applied)>;

    /// Queues an external event for a live instance.
    fn raise_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<DeliveryOutcome> {
        let message = Message::Event {
            name: name.to_owned(),
            payload: payload.to_owned(),
            accepted_at: now,
        };
        Ok(self.deliver(id, &message, None)?.0)
    }

    /// Queues a termination for a live instance.
    fn request_termination(&self, id: &str, reason: &str) -> StoreResult<DeliveryOutcome> {
        let message = Message::Terminate {
            reason: reason.to_owned(),
        };
        Ok(self.deliver(id, &message, None)?.0)
    }

    fn instance(&self, id: &str) -> StoreResult<Option<Instance>>;

    /// The instance with its current generation's history, read together.
    fn instance_with_history(&self, id: &str)
    -> StoreResult<Option<(Instance, Vec<HistoryEntry>)>>;

    /// Deletes a finished instance with its history.
    fn purge(&self, id: &str) -> StoreResult<PurgeOutcome>;

    /// Up to `limit` instances matching `filter`, after `after`, in
    /// creation order.
    fn query_instances(
        &self,
        filter: &InstanceFilter,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> StoreResult<Vec<Instance>>;

    /// How many instances match `filter`, counted no further than `cap`.
    fn count_instances(&self, filter: &InstanceFilter, cap: u64) -> StoreResult<u64>;

    /// How many instances there are of each status (each status with any),
    /// from counts the store keeps as instances start, change status and
    /// are purged, in the same transactions: cheap however many there are.
    fn instance_counts(&self) -> StoreResult<Vec<(RuntimeStatus, u64)>>;

    /// Every stored component version, with the unfinished instances
    /// pinned to each, in the order they were stored.
    fn component_versions(&self) -> StoreResult<Vec<ComponentVersion>>;

    /// Deletes up to `limit` finished instances matching `filter`, in one
    /// transaction; returns how many. Callers loop, so other requests get
    /// the database between batches.
    fn purge_finished(&self, filter: &InstanceFilter, limit: usize) -> StoreResult<usize>;

    /// The instance, its history and its oldest queued messages, as `read`
    /// asks; `None` when no message is queued and no effect is pending
    /// (nothing to do).
    fn load_work(&self, id: &str, read: WorkRead) -> StoreResult<Option<WorkItem>>;

    fn commit_episode(&self, commit: &EpisodeCommit) -> StoreResult<CommitOutcome>;

    /// Writes `entries` as the history of `id`'s generation `generation`
    /// from sequence number `first_seq` on, for a staged commit: invisible
    /// (the history is as long as the instance row says) until that commit
    /// lands. Overwrites what an abandoned attempt left there, but never
    /// the visible history, nor into a generation the instance has left
    /// (a host that lost the instance may stage late, after its new owner
    /// moved on): of `entries`, it writes only [`stageable`]'s.
    fn stage_history(
        &self,
        id: &str,
        generation: u32,
        first_seq: usize,
        entries: Vec<HistoryEntry>,
    ) -> StoreResult<()>;

    /// Writes `effects` as numbers `first..` of the pending effects of the
    /// staged commit `token` of `id`: nothing happens to them until that
    /// commit lands.
    fn stage_effects(
        &self,
        id: &str,
        token: i64,
        first: usize,
        effects: Vec<Effect>,
    ) -> StoreResult<()>;

    /// Applies, in one transaction, up to `limit` of the effects a staged
    /// commit of `id` left pending, in order; `None` if none are pending.
    /// An instance's effects are applied before its next episode reads
    /// anything: the engine drains them first.
    fn apply_pending_effects(&self, id: &str, limit: usize) -> StoreResult<Option<FollowUp>>;

    /// The sequence numbers of every message queued for `id`: what an
    /// episode that fails the instance without reading its inbox consumes
    /// (see [`EpisodeCommit::consumed`]).
    fn queued_messages(&self, id: &str) -> StoreResult<Vec<i64>>;

    /// Instances with queued messages or pending effects: the work to
    /// resume after a restart (among hosts, the work no live host owns:
    /// a live host's is its own).
    fn instances_with_messages(&self) -> StoreResult<Vec<String>>;

    /// Turns every timer due at `now` into a `TimerFired` message for its
    /// instance, in one transaction; returns the instances to run.
    fn fire_due_timers(&self, now: Millis) -> StoreResult<Vec<String>>;

    /// When the earliest timer is due, if any.
    fn next_timer_due(&self) -> StoreResult<Option<Millis>>;

    /// Leases up to `limit` of the oldest activities not leased (or whose
    /// lease expired) until `now + lease`, in one transaction. A crashed
    /// worker's activity runs again: at least once.
    ///
    /// `now` is the calling host's clock. A store several hosts share must
    /// not let their clocks disagree on a lease: it takes a lease as
    /// expired only once its own clock has passed it too, and starts a
    /// lease (here and in [`EpisodeCommit::lease`]) at the later of `now`
    /// and its own clock. So a host whose clock runs ahead cannot take an
    /// activity another host still runs, and one whose clock runs behind
    /// cannot lease one for less than `lease`.
    fn claim_activities(
        &self,
        now: Millis,
        lease: Millis,
        limit: usize,
    ) -> StoreResult<Vec<ActivityWork>>;

    /// Records an activity's result as a message for its instance (or
    /// applies it by `direct`) and removes it from the queue, in one
    /// transaction. Returns `None` (and records nothing) if it is gone:
    /// already completed by another run, or its generation ended. So a
    /// result is recorded at most once.
    fn complete_activity(
        &self,
        work: &ActivityWork,
        result: Result<String, Failure>,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<Option<Applied>>;

    /// Releases every lease: at start-up, no worker of this store is alive.
    fn release_activity_leases(&self) -> StoreResult<usize>;

    /// Releases the leases a commit whose outcome is unknown may have
    /// taken (`leased`), so that a claim takes those activities now rather
    /// than when the lease ends. Releases only the leases that commit took
    /// (named by its lease's `from`) and this store's own engine holds:
    /// not another host's, nor one a later commit or claim took (its worker
    /// may be running it). Returns how many it released: none if the
    /// commit did not land (or has not landed yet).
    fn release_lost_leases(&self, leased: &LeasedActivities) -> StoreResult<usize>;

    /// Keeps component versions (content-addressed: a version is the hash
    /// of its bytes). Stores the `added` ones not stored yet, marks the
    /// `current` ones as served, and every other one as retired since
    /// `now` (unless retired earlier).
    fn record_components(
        &self,
        added: &[(String, Vec<u8>)],
        current: &[String],
        now: Millis,
    ) -> StoreResult<()>;

    /// The bytes of a stored component version.
    fn component(&self, version: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Makes this host the one that runs `id`'s episodes, unless another
    /// live host is: then that host is woken for it (see [`Store::on_wake`])
    /// and this returns `false`, and this host leaves the instance alone.
    /// A store only one host uses owns everything.
    fn claim(&self, _id: &str) -> StoreResult<bool> {
        Ok(true)
    }

    /// Makes this host the owner of `id`, whoever owned it: for an
    /// instance no host runs (a failed one, to rewind it). A host that did
    /// run it would have its commits refused.
    fn seize(&self, _id: &str) -> StoreResult<()> {
        Ok(())
    }

    /// Up to `limit` instances with queued messages or pending effects
    /// that no live host owns (a dead host's, or one never claimed), or
    /// that this host owns with a message queued before the previous call
    /// (so its wake-up was lost; a newer one's is on the way), but not a
    /// suspended one whose messages all wait for a resume: what to
    /// schedule in case a wake-up was lost. Its cost must follow the work
    /// waiting, not the number of instances: it runs every poll interval
    /// on every host. Empty for a store only one host uses.
    fn unowned_work(&self, _limit: usize) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// How often the engine looks for [`Store::unowned_work`], and for
    /// timers and activities other hosts left; `None` for a store only one
    /// host uses (it is woken for everything it must do).
    fn poll_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Calls `wake` whenever another host asks this one to run an
    /// instance's episodes. Never called for a store only one host uses.
    fn on_wake(&self, _wake: Box<dyn Fn(WakeUp<'_>) + Send + Sync>) {}

    /// Makes live host `to` the one that runs `id`, if this host does,
    /// and wakes it; `true` if it did. For an instance whose requests keep
    /// arriving at `to`, so that it applies them in the transactions that
    /// accept them. Safe at any time: a commit by this host after it is
    /// refused as stale, and a claim by this host wakes `to` instead. A
    /// store only one host uses keeps everything.
    fn hand_over(&self, _id: &str, _to: &str) -> StoreResult<bool> {
        Ok(false)
    }

    /// Gives up what this host owns, for a clean shutdown: other hosts
    /// take it over at once rather than after its lease expires.
    fn leave(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Deletes the component versions retired at or before
    /// `retired_before` that no instance may run again (one not finished,
    /// or failed, since a rewind replays it); returns them.
    fn collect_components(&self, retired_before: Millis) -> StoreResult<Vec<String>>;

    /// What waits in the store now: instances by status (as
    /// [`Store::instance_counts`]), queued messages, timers, activities
    /// (leased if their lease lasts past `now`). Counts every queued row:
    /// for a scrape now and then, not for every request.
    fn counts(&self, now: Millis) -> StoreResult<StoreCounts>;

    /// Reports every group commit from now on to `observer`.
    fn observe_commits(&self, observer: std::sync::Arc<dyn CommitObserver>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_beyond_the_visible_history_of_a_generation_not_left_are_staged() {
        // Ten entries from seq 5, generation 2.
        assert_eq!(stageable(2, 5, 10, Some((2, 0))), 0..10);
        assert_eq!(stageable(2, 5, 10, Some((2, 5))), 0..10);
        assert_eq!(stageable(2, 5, 10, Some((2, 8))), 3..10);
        assert_eq!(stageable(2, 5, 10, Some((2, 20))), 10..10);
        // A generation not reached yet, one left, an instance gone.
        assert_eq!(stageable(2, 5, 10, Some((1, 30))), 0..10);
        assert_eq!(stageable(2, 5, 10, Some((3, 0))), 0..0);
        assert_eq!(stageable(2, 5, 10, None), 0..0);
    }

    /// A running child of `parent`'s task 3, and the row a commit that
    /// fails it with `error` leaves.
    fn failing_child(error: &str) -> (Instance, Instance) {
        let read = Instance {
            id: "child".into(),
            name: "Child".into(),
            status: RuntimeStatus::Running,
            generation: 0,
            input: "null".into(),
            original_input: "null".into(),
            output: None,
            custom_status: None,
            created_at: 1,
            updated_at: 1,
            parent: Some(ParentTask {
                instance_id: "parent".into(),
                generation: 2,
                task_id: 3,
            }),
            version: None,
            revision: 1,
            trace: None,
        };
        let mut updated = read.successor(2);
        updated.status = RuntimeStatus::Failed;
        updated.output = Some(serde_json::to_string(error).unwrap());
        (read, updated)
    }

    fn reported(commit: &EpisodeCommit) -> Failure {
        match commit.report_to_parent() {
            Some((
                parent,
                Message::SubOrchestrationDone {
                    generation,
                    id,
                    result,
                },
            )) => {
                assert_eq!((parent.as_str(), generation, id), ("parent", 2, 3));
                result.expect_err("a failure")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_child_that_failed_with_an_error_of_its_own_hands_its_parent_that_error() {
        let (read, updated) = failing_child("no such customer");
        let own = Failure::permanent("validation", "no such customer");
        let failed = HistoryEntry::ExecutionFailed {
            timestamp: 2,
            error: own.message.clone(),
            details: Some(own.details()),
        };
        let commit = EpisodeCommit::consuming(read.clone(), updated.clone(), vec![failed], vec![]);
        assert_eq!(reported(&commit), own);

        // A child that trapped has no error of its own: a retryable `failed`.
        let trapped = HistoryEntry::ExecutionFailed {
            timestamp: 2,
            error: "the orchestrator trapped".into(),
            details: None,
        };
        let commit = EpisodeCommit::consuming(read, updated, vec![trapped], vec![]);
        let failure = reported(&commit);
        assert_eq!(
            (failure.kind.as_str(), failure.retryable),
            (Failure::FAILED, true)
        );
        assert!(failure.message.contains("no such customer"), "{failure:?}");
    }

    #[test]
    fn a_backends_error_is_classified_by_the_marker_in_its_chain() {
        let full = anyhow::anyhow!("disk I/O").context(Unavailable("the disk is full".into()));
        let error = StoreError::from(full.context("inserting a row"));
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert_eq!(
            error.unavailable().map(|reason| reason.0.as_str()),
            Some("the disk is full")
        );

        let lost = anyhow::Error::new(OutcomeUnknown("connection reset".into()));
        let error = StoreError::from(lost);
        assert!(matches!(error, StoreError::OutcomeUnknown(_)), "{error:?}");
        assert!(error.unavailable().is_none());

        let fault = StoreError::from(anyhow::anyhow!("a row that does not read"));
        assert!(matches!(fault, StoreError::Fault(_)), "{fault:?}");
        assert!(fault.unavailable().is_none());
    }

    #[test]
    fn a_store_error_passed_on_with_context_is_found_again_whole() {
        let full = anyhow::Error::new(Unavailable("read-only".into()));
        let passed_on = anyhow::Error::new(StoreError::from(full)).context("committing an episode");
        let found = StoreError::of(&passed_on).expect("the store's error");
        assert!(found.unavailable().is_some());
        // Turned back into a store error, it keeps its kind.
        assert!(matches!(
            StoreError::from(passed_on),
            StoreError::Unavailable(_)
        ));
        assert!(StoreError::of(&anyhow::anyhow!("elsewhere")).is_none());
    }
}
