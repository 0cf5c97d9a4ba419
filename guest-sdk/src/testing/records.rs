//! What the orchestrator under test did, as the test can inspect it.

use std::time::SystemTime;

use serde_json::Value;

use crate::EntityId;
use crate::wire::Action;

/// An activity the orchestrator scheduled, and the test's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityCall {
    pub name: String,
    pub input: Value,
    /// 1, or which attempt of a call with retries.
    pub attempt: u32,
    /// The scripted answer: its output, or its error message. `None` if it
    /// never ran because its generation ended in the episode that scheduled
    /// it (the host drops such activities too).
    pub result: Option<Result<Value, String>>,
}

/// A sub-orchestration the orchestrator started, and the test's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SubOrchestrationCall {
    pub name: String,
    /// The child's instance ID: the one the orchestrator gave, or the one the
    /// host derives, `"{parent instance ID}:{generation}:{task ID}"`.
    pub instance_id: String,
    pub input: Value,
    /// The scripted answer: the child's output, or its error message. Always
    /// present: the host starts a child even if the parent's generation
    /// ends in the same episode (and then ignores the child's result).
    pub result: Result<Value, String>,
}

/// A durable timer the orchestrator created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTimer {
    /// The episode time when it was created.
    pub created_at: SystemTime,
    pub fire_at: SystemTime,
}

/// An event the orchestrator sent to another instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SentEvent {
    pub instance_id: String,
    pub name: String,
    pub payload: Value,
}

/// An instance the orchestrator started on its own (fire and forget).
#[derive(Debug, Clone, PartialEq)]
pub struct StartedOrchestration {
    pub name: String,
    pub instance_id: String,
    pub input: Value,
}

/// An operation the orchestrator signalled to an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySignal {
    pub target: EntityId,
    pub operation: String,
    pub input: Value,
}

/// An operation the orchestrator called on an entity, and its result.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCall {
    pub target: EntityId,
    pub operation: String,
    pub input: Value,
    /// What the entity function returned: its output, or its error message.
    pub result: Result<Value, String>,
}

/// An event carried over to the next generation by continue-as-new.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedEvent {
    pub name: String,
    pub payload: Value,
}

/// Everything the orchestrator did, across generations, in order.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) actions: Vec<Action>,
    pub(super) activities: Vec<ActivityCall>,
    pub(super) sub_orchestrations: Vec<SubOrchestrationCall>,
    pub(super) timers: Vec<CreatedTimer>,
    pub(super) sent_events: Vec<SentEvent>,
    pub(super) started_orchestrations: Vec<StartedOrchestration>,
    pub(super) signals: Vec<EntitySignal>,
    pub(super) entity_calls: Vec<EntityCall>,
    pub(super) lock_requests: Vec<Vec<EntityId>>,
    /// The latest custom status; it belongs to the instance, so it
    /// survives continue-as-new.
    pub(super) custom_status: Option<Value>,
}
