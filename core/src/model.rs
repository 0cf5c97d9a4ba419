//! The domain: instances, their history, and the messages waiting for them.
//!
//! Every layer speaks these types; none of them knows about HTTP, SQL or
//! wasmtime. `HistoryEntry` and `Message` are stored as JSON, so their serde
//! shape is a compatibility boundary: add variants and optional fields, never
//! rename or remove them.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::entity::Sender;
pub use crate::failure::{Failure, FailureDetails};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = u64;

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as Millis)
        .unwrap_or(0)
}

/// Runtime statuses, named as Durable Functions names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeStatus {
    /// Accepted, not executed yet.
    Pending,
    Running,
    Completed,
    /// Transient: between two generations. Never stored, since the next
    /// generation starts in the same transaction.
    ContinuedAsNew,
    Failed,
    Terminated,
    /// Paused by a user: events and results queue up until it is resumed.
    Suspended,
}

impl RuntimeStatus {
    pub const ALL: [RuntimeStatus; 7] = [
        RuntimeStatus::Pending,
        RuntimeStatus::Running,
        RuntimeStatus::Completed,
        RuntimeStatus::ContinuedAsNew,
        RuntimeStatus::Failed,
        RuntimeStatus::Terminated,
        RuntimeStatus::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "Pending",
            RuntimeStatus::Running => "Running",
            RuntimeStatus::Completed => "Completed",
            RuntimeStatus::ContinuedAsNew => "ContinuedAsNew",
            RuntimeStatus::Failed => "Failed",
            RuntimeStatus::Terminated => "Terminated",
            RuntimeStatus::Suspended => "Suspended",
        }
    }

    pub fn parse(text: &str) -> Option<RuntimeStatus> {
        RuntimeStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }

    /// Finished for good: no more events, and the ID can be started again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated
        )
    }
}

impl fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instance ID that is safe in a URL path segment and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(text: &str) -> Result<InstanceId, String> {
        if text.is_empty() {
            return Err("instance ID must not be empty".into());
        }
        if text.chars().count() > Self::MAX_LEN {
            return Err(format!(
                "instance ID is {} characters long; the limit is {}",
                text.chars().count(),
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
        {
            return Err(format!(
                "instance ID must not contain '/', '\\', '#', '?' or control characters; found {bad:?}"
            ));
        }
        Ok(InstanceId(text.to_owned()))
    }

    /// A fresh random ID, for starts that do not name one.
    pub fn generate() -> InstanceId {
        InstanceId(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The current state of one instance: one row, updated by every episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    /// Orchestrator name.
    pub name: String,
    pub status: RuntimeStatus,
    /// Counts continue-as-new and restarts under the same ID; with the ID it
    /// seeds the orchestrator's random source.
    pub generation: u32,
    /// JSON input of the current generation.
    pub input: String,
    /// JSON input of the first generation, which a restart runs again.
    pub original_input: String,
    /// JSON output once finished: the result, the error, or the termination reason.
    pub output: Option<String>,
    pub custom_status: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Set for a sub-orchestration: where its result goes.
    pub parent: Option<ParentTask>,
    /// The component version (`sha256:…`) the current generation runs on,
    /// fixed at its start; `None` for instances started before versions
    /// were recorded, which run on the current version of `name`.
    pub version: Option<String>,
    /// Bumped by every commit that changes the row (and by a new start
    /// under the ID): the fencing token a commit is checked against. A
    /// commit planned on an older revision is refused, whatever the rest
    /// of the row looks like and whatever any clock says.
    pub revision: u64,
    /// Where the instance's trace spans go, if it is traced: opaque to the
    /// store, which keeps it from the start (see [`NewInstance::trace`]).
    pub trace: Option<String>,
}

impl Instance {
    /// The row as a commit planned on this one leaves it, before its
    /// changes: the next revision, updated `now` (or at its last update,
    /// if a clock is behind: an instance's time never goes backwards).
    pub fn successor(&self, now: Millis) -> Instance {
        Instance {
            updated_at: now.max(self.updated_at),
            revision: self.revision + 1,
            ..self.clone()
        }
    }
}

/// The task of a parent instance that a sub-orchestration completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentTask {
    pub instance_id: String,
    pub generation: u32,
    pub task_id: u64,
}

impl ParentTask {
    /// The ID of the child this task starts when the orchestrator names
    /// none: unique to the task, and the same on every replay.
    pub fn default_child_id(&self) -> String {
        format!("{}:{}:{}", self.instance_id, self.generation, self.task_id)
    }
}

/// One entry of a generation's history: what happened to the instance
/// (events, fed to the orchestrator) and what it did (actions, checked on replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HistoryEntry {
    // Events.
    ExecutionStarted {
        timestamp: Millis,
        name: String,
        input: String,
    },
    OrchestratorStarted {
        timestamp: Millis,
    },
    EventRaised {
        timestamp: Millis,
        name: String,
        payload: String,
    },
    TimerFired {
        timestamp: Millis,
        id: u64,
        fire_at: Millis,
    },
    TaskCompleted {
        timestamp: Millis,
        id: u64,
        output: String,
    },
    TaskFailed {
        timestamp: Millis,
        id: u64,
        error: String,
        /// Absent in entries from before failure details.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<FailureDetails>,
    },
    SubOrchestrationCompleted {
        timestamp: Millis,
        id: u64,
        output: String,
    },
    SubOrchestrationFailed {
        timestamp: Millis,
        id: u64,
        error: String,
        /// Absent in entries from before failure details.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<FailureDetails>,
    },
    // Actions.
    CustomStatusSet {
        timestamp: Millis,
        value: String,
    },
    ExecutionCompleted {
        timestamp: Millis,
        output: String,
    },
    ExecutionFailed {
        timestamp: Millis,
        error: String,
        /// Set when the orchestrator failed with a failure of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<FailureDetails>,
    },
    ContinuedAsNew {
        timestamp: Millis,
        input: String,
    },
    TimerCreated {
        timestamp: Millis,
        id: u64,
        fire_at: Millis,
    },
    TaskScheduled {
        timestamp: Millis,
        id: u64,
        name: String,
        input: String,
        /// Which attempt of a call under a retry policy; absent for the
        /// first (and in entries from before attempts were kept).
        #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
        attempt: u32,
    },
    SubOrchestrationCreated {
        timestamp: Millis,
        id: u64,
        name: String,
        /// As the orchestrator gave it, if it did.
        instance_id: Option<String>,
        input: String,
    },
    EventSent {
        timestamp: Millis,
        instance_id: String,
        name: String,
        payload: String,
    },
    /// A timer the orchestrator dropped before it fired.
    TimerCancelled {
        timestamp: Millis,
        id: u64,
    },
    /// An instance the orchestrator started on its own (not a child).
    OrchestrationStarted {
        timestamp: Millis,
        name: String,
        instance_id: String,
        input: String,
    },
    /// An operation the orchestrator sent an entity (fire and forget).
    EntitySignaled {
        timestamp: Millis,
        /// The entity's instance ID, `@name@key`.
        target: String,
        operation: String,
        input: String,
    },
    /// An operation the orchestrator awaits the result of.
    EntityCalled {
        timestamp: Millis,
        id: u64,
        target: String,
        operation: String,
        input: String,
    },
    /// The orchestrator asked to lock these entities (sorted).
    EntityLockRequested {
        timestamp: Millis,
        id: u64,
        targets: Vec<String>,
    },
    /// The orchestrator released the entities it held.
    EntitiesUnlocked {
        timestamp: Millis,
    },
    // Entity events.
    EntityCallCompleted {
        timestamp: Millis,
        id: u64,
        output: String,
    },
    EntityCallFailed {
        timestamp: Millis,
        id: u64,
        error: String,
        details: FailureDetails,
    },
    /// Every entity of lock request `id` is held for the orchestrator.
    EntitiesLocked {
        timestamp: Millis,
        id: u64,
    },
    /// An entity's whole record (see [`crate::entity`]): the only entry
    /// of an entity's history, replaced by each of its episodes.
    EntityState {
        /// Its last operation.
        timestamp: Millis,
        state: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locked_by: Option<Sender>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deferred: Vec<Message>,
    },
    // Host decisions, neither fed to nor produced by the guest.
    ExecutionTerminated {
        timestamp: Millis,
        reason: String,
    },
    ExecutionSuspended {
        timestamp: Millis,
        reason: String,
    },
    ExecutionResumed {
        timestamp: Millis,
        reason: String,
    },
    /// A failed instance was rewound: the history after its last good point
    /// was cut, and the orchestrator runs again from there.
    ExecutionRewound {
        timestamp: Millis,
        reason: String,
    },
}

fn first_attempt() -> u32 {
    1
}

fn is_first_attempt(attempt: &u32) -> bool {
    *attempt == 1
}

impl HistoryEntry {
    pub fn timestamp(&self) -> Millis {
        // One list of variants, in `timestamp_mut`.
        *self.clone().timestamp_mut()
    }

    pub fn timestamp_mut(&mut self) -> &mut Millis {
        match self {
            HistoryEntry::ExecutionStarted { timestamp, .. }
            | HistoryEntry::OrchestratorStarted { timestamp }
            | HistoryEntry::EventRaised { timestamp, .. }
            | HistoryEntry::TimerFired { timestamp, .. }
            | HistoryEntry::TaskCompleted { timestamp, .. }
            | HistoryEntry::TaskFailed { timestamp, .. }
            | HistoryEntry::TaskScheduled { timestamp, .. }
            | HistoryEntry::SubOrchestrationCompleted { timestamp, .. }
            | HistoryEntry::SubOrchestrationFailed { timestamp, .. }
            | HistoryEntry::SubOrchestrationCreated { timestamp, .. }
            | HistoryEntry::EventSent { timestamp, .. }
            | HistoryEntry::TimerCancelled { timestamp, .. }
            | HistoryEntry::OrchestrationStarted { timestamp, .. }
            | HistoryEntry::CustomStatusSet { timestamp, .. }
            | HistoryEntry::ExecutionCompleted { timestamp, .. }
            | HistoryEntry::ExecutionFailed { timestamp, .. }
            | HistoryEntry::ContinuedAsNew { timestamp, .. }
            | HistoryEntry::TimerCreated { timestamp, .. }
            | HistoryEntry::ExecutionTerminated { timestamp, .. }
            | HistoryEntry::ExecutionSuspended { timestamp, .. }
            | HistoryEntry::ExecutionResumed { timestamp, .. }
            | HistoryEntry::ExecutionRewound { timestamp, .. }
            | HistoryEntry::EntitySignaled { timestamp, .. }
            | HistoryEntry::EntityCalled { timestamp, .. }
            | HistoryEntry::EntityLockRequested { timestamp, .. }
            | HistoryEntry::EntitiesUnlocked { timestamp }
            | HistoryEntry::EntityCallCompleted { timestamp, .. }
            | HistoryEntry::EntityCallFailed { timestamp, .. }
            | HistoryEntry::EntitiesLocked { timestamp, .. }
            | HistoryEntry::EntityState { timestamp, .. } => timestamp,
        }
    }

    /// The Durable Functions name of this kind of entry.
    pub fn event_type(&self) -> &'static str {
        match self {
            HistoryEntry::ExecutionStarted { .. } => "ExecutionStarted",
            HistoryEntry::OrchestratorStarted { .. } => "OrchestratorStarted",
            HistoryEntry::EventRaised { .. } => "EventRaised",
            HistoryEntry::TimerFired { .. } => "TimerFired",
            HistoryEntry::TimerCreated { .. } => "TimerCreated",
            HistoryEntry::TaskScheduled { .. } => "TaskScheduled",
            HistoryEntry::TaskCompleted { .. } => "TaskCompleted",
            HistoryEntry::TaskFailed { .. } => "TaskFailed",
            HistoryEntry::SubOrchestrationCreated { .. } => "SubOrchestrationInstanceCreated",
            HistoryEntry::SubOrchestrationCompleted { .. } => "SubOrchestrationInstanceCompleted",
            HistoryEntry::SubOrchestrationFailed { .. } => "SubOrchestrationInstanceFailed",
            HistoryEntry::EventSent { .. } => "EventSent",
            HistoryEntry::TimerCancelled { .. } => "TimerCancelled",
            HistoryEntry::OrchestrationStarted { .. } => "OrchestrationInstanceStarted",
            HistoryEntry::CustomStatusSet { .. } => "CustomStatusSet",
            HistoryEntry::ExecutionCompleted { .. } => "ExecutionCompleted",
            HistoryEntry::ExecutionFailed { .. } => "ExecutionFailed",
            HistoryEntry::ContinuedAsNew { .. } => "ContinuedAsNew",
            HistoryEntry::ExecutionTerminated { .. } => "ExecutionTerminated",
            HistoryEntry::ExecutionSuspended { .. } => "ExecutionSuspended",
            HistoryEntry::ExecutionResumed { .. } => "ExecutionResumed",
            HistoryEntry::ExecutionRewound { .. } => "ExecutionRewound",
            HistoryEntry::EntitySignaled { .. } => "EntitySignaled",
            HistoryEntry::EntityCalled { .. } => "EntityCalled",
            HistoryEntry::EntityLockRequested { .. } => "EntityLockRequested",
            HistoryEntry::EntitiesUnlocked { .. } => "EntitiesUnlocked",
            HistoryEntry::EntityCallCompleted { .. } => "EntityCallCompleted",
            HistoryEntry::EntityCallFailed { .. } => "EntityCallFailed",
            HistoryEntry::EntitiesLocked { .. } => "EntitiesLocked",
            HistoryEntry::EntityState { .. } => "EntityState",
        }
    }
}

/// A request accepted for an instance and not yet applied by an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    /// Begin the generation described by the instance row.
    Start,
    Event {
        name: String,
        payload: String,
        accepted_at: Millis,
    },
    Terminate {
        reason: String,
    },
    /// Hold back events and results until a `Resume`.
    Suspend {
        reason: String,
    },
    Resume {
        reason: String,
    },
    /// Run the orchestrator again after a rewind, even with no new event.
    Rewind {
        reason: String,
    },
    /// A durable timer came due. Ignored if its generation has ended.
    TimerFired {
        generation: u32,
        id: u64,
        fire_at: Millis,
    },
    /// An activity finished. Ignored if its generation has ended.
    ActivityDone {
        generation: u32,
        id: u64,
        result: Result<String, Failure>,
    },
    /// A sub-orchestration finished (or could not start). Ignored if its
    /// generation has ended.
    SubOrchestrationDone {
        generation: u32,
        id: u64,
        result: Result<String, Failure>,
    },
    /// An operation for an entity (this instance is one).
    EntityOperation {
        operation: String,
        /// JSON.
        input: String,
        /// Who sent it: `None` for a client's signal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<Sender>,
        accepted_at: Millis,
    },
    /// Lock this entity, `targets[position]`, for `holder`, then pass the
    /// request on to the next of `targets` (sorted entity instance IDs),
    /// or tell the holder they are all held.
    EntityLock {
        holder: Sender,
        targets: Vec<String>,
        position: usize,
    },
    /// Release this entity if `holder` holds it, and pass the release on
    /// along the lock's targets from `position`.
    EntityUnlock {
        holder: Sender,
        targets: Vec<String>,
        position: usize,
    },
    /// An entity applied an operation a task of this instance called.
    /// Ignored if its generation has ended.
    EntityCallDone {
        generation: u32,
        id: u64,
        result: Result<String, Failure>,
    },
    /// Every entity of this instance's lock task `id` is held for it.
    /// Ignored if its generation has ended.
    EntitiesLocked {
        generation: u32,
        id: u64,
    },
}

impl Message {
    /// Whether it is addressed to an entity: delivering it to an ID with
    /// no row creates the entity's row ([`NewInstance::entity`]).
    ///
    /// [`NewInstance::entity`]: crate::store::NewInstance::entity
    pub fn addresses_entity(&self) -> bool {
        matches!(
            self,
            Message::EntityOperation { .. }
                | Message::EntityLock { .. }
                | Message::EntityUnlock { .. }
        )
    }

    /// The `type`s (as stored) of the messages that end a suspension: a
    /// suspended instance's read looks for the first of them beyond its
    /// batch ([`WorkRead::max_messages`]).
    ///
    /// [`WorkRead::max_messages`]: crate::store::WorkRead::max_messages
    pub const ENDING_SUSPENSION: [&str; 2] = ["Resume", "Terminate"];

    /// The `type`s (as stored) of the messages an episode applies while
    /// the instance is suspended ([`acts_while_suspended`](Self::acts_while_suspended)).
    pub const ACTING_WHILE_SUSPENDED: [&str; 4] = ["Terminate", "Suspend", "Resume", "Rewind"];

    /// Whether it ends a suspension (its `type` is one of
    /// [`ENDING_SUSPENSION`](Self::ENDING_SUSPENSION)).
    pub fn ends_suspension(&self) -> bool {
        matches!(self, Message::Resume { .. } | Message::Terminate { .. })
    }

    /// Whether an episode applies it while the instance is suspended; every
    /// other message is held in the inbox until a resume.
    pub fn acts_while_suspended(&self) -> bool {
        matches!(
            self,
            Message::Terminate { .. }
                | Message::Suspend { .. }
                | Message::Resume { .. }
                | Message::Rewind { .. }
        )
    }
}

/// A message with its position in the instance's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    /// Increases with every accepted message; an episode consumes the
    /// messages it read (named by these), which need not be a prefix.
    pub seq: i64,
    pub message: Message,
}

impl QueuedMessage {
    /// The message stored as `text` at `seq` in `id`'s inbox.
    pub fn read(id: &str, seq: i64, text: &str) -> anyhow::Result<QueuedMessage> {
        let message = serde_json::from_str(text).map_err(|error| {
            anyhow::anyhow!("instance {id} has a message this host cannot read: {text}: {error}")
        })?;
        Ok(QueuedMessage { seq, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `type` each of `messages` is stored with.
    fn stored_types(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|message| serde_json::to_value(message).unwrap()["type"].clone())
            .map(|kind| kind.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_types_acting_on_or_ending_a_suspension_are_those_the_methods_name() {
        let reason = "r".to_owned();
        let ending = [
            Message::Resume {
                reason: reason.clone(),
            },
            Message::Terminate { reason },
        ];
        assert_eq!(stored_types(&ending), Message::ENDING_SUSPENSION);
        assert!(ending.iter().all(Message::ends_suspension));
        assert!(ending.iter().all(Message::acts_while_suspended));
        let suspend = Message::Suspend { reason: "r".into() };
        assert!(!suspend.ends_suspension() && suspend.acts_while_suspended());
        let acting = [
            Message::Terminate { reason: "r".into() },
            suspend,
            Message::Resume { reason: "r".into() },
            Message::Rewind { reason: "r".into() },
        ];
        assert_eq!(stored_types(&acting), Message::ACTING_WHILE_SUSPENDED);
        assert!(acting.iter().all(Message::acts_while_suspended));
    }

    #[test]
    fn instance_ids_reject_separators_controls_and_overlong_text() {
        for bad in ["", "a/b", "a\\b", "a#b", "a?b", "a\nb", "a\u{7f}b"] {
            assert!(
                InstanceId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(InstanceId::parse(&"x".repeat(257)).is_err());
        assert!(InstanceId::parse(&"é".repeat(256)).is_ok());
        assert!(InstanceId::parse("counter:user-42 (eu)").is_ok());
    }

    #[test]
    fn statuses_round_trip_by_name_ignoring_case() {
        for status in RuntimeStatus::ALL {
            assert_eq!(RuntimeStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(
            RuntimeStatus::parse("running"),
            Some(RuntimeStatus::Running)
        );
        assert_eq!(RuntimeStatus::parse("Sleeping"), None);
    }
}
