//! The JSON form in which a backend keeps a staged commit's pending
//! [`Effect`]s (tagged by `type`). Stored, so a compatibility boundary:
//! add variants and optional fields, never rename or remove them.

use serde::{Deserialize, Serialize};

use crate::model::{Failure, Message, Millis, ParentTask};
use crate::store::{Effect, NewInstance};

/// `effect` as stored.
pub fn to_json(effect: Effect) -> String {
    serde_json::to_string(&StoredEffect::from_effect(effect)).expect("effects serialize")
}

/// An effect read back from its stored form.
pub fn from_json(text: &str) -> serde_json::Result<Effect> {
    Ok(serde_json::from_str::<StoredEffect>(text)?.into_effect())
}

/// An [`Effect`] as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum StoredEffect {
    Start {
        id: String,
        name: String,
        input: String,
        now: Millis,
        version: Option<String>,
        /// Absent for an instance an orchestrator started on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_instance_id: Option<String>,
        #[serde(default)]
        parent_generation: u32,
        #[serde(default)]
        parent_task_id: u64,
        /// Absent in effects stored before traces (and when untraced).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },
    StartFailed {
        parent_instance_id: String,
        parent_generation: u32,
        parent_task_id: u64,
        /// A message alone in effects stored before failure details.
        error: Failure,
    },
    Send {
        target: String,
        name: String,
        payload: String,
        accepted_at: Millis,
    },
    Deliver {
        target: String,
        message: Message,
    },
    Activity {
        generation: u32,
        task_id: u64,
        name: String,
        input: String,
        /// Absent in effects stored before attempts were kept.
        #[serde(default = "first_attempt")]
        attempt: u32,
    },
    Timer {
        generation: u32,
        task_id: u64,
        fire_at: Millis,
    },
}

impl StoredEffect {
    fn from_effect(effect: Effect) -> StoredEffect {
        match effect {
            Effect::Child(Ok(new)) => {
                let (parent_instance_id, parent_generation, parent_task_id) = match new.parent {
                    Some(parent) => (Some(parent.instance_id), parent.generation, parent.task_id),
                    None => (None, 0, 0),
                };
                StoredEffect::Start {
                    id: new.id,
                    name: new.name,
                    input: new.input,
                    now: new.now,
                    version: new.version,
                    parent_instance_id,
                    parent_generation,
                    parent_task_id,
                    trace: new.trace,
                }
            }
            Effect::Child(Err((parent, error))) => StoredEffect::StartFailed {
                parent_instance_id: parent.instance_id,
                parent_generation: parent.generation,
                parent_task_id: parent.task_id,
                error,
            },
            Effect::Send {
                target,
                name,
                payload,
                accepted_at,
            } => StoredEffect::Send {
                target,
                name,
                payload,
                accepted_at,
            },
            Effect::Deliver { target, message } => StoredEffect::Deliver { target, message },
            Effect::Activity {
                generation,
                task_id,
                name,
                input,
                attempt,
            } => StoredEffect::Activity {
                generation,
                task_id,
                name,
                input,
                attempt,
            },
            Effect::Timer {
                generation,
                task_id,
                fire_at,
            } => StoredEffect::Timer {
                generation,
                task_id,
                fire_at,
            },
        }
    }

    fn into_effect(self) -> Effect {
        match self {
            StoredEffect::Start {
                id,
                name,
                input,
                now,
                version,
                parent_instance_id,
                parent_generation,
                parent_task_id,
                trace,
            } => Effect::Child(Ok(NewInstance {
                id,
                name,
                input,
                now,
                parent: parent_instance_id
                    .map(|instance_id| parent_task(instance_id, parent_generation, parent_task_id)),
                version,
                trace,
            })),
            StoredEffect::StartFailed {
                parent_instance_id,
                parent_generation,
                parent_task_id,
                error,
            } => Effect::Child(Err((
                parent_task(parent_instance_id, parent_generation, parent_task_id),
                error,
            ))),
            StoredEffect::Send {
                target,
                name,
                payload,
                accepted_at,
            } => Effect::Send {
                target,
                name,
                payload,
                accepted_at,
            },
            StoredEffect::Deliver { target, message } => Effect::Deliver { target, message },
            StoredEffect::Activity {
                generation,
                task_id,
                name,
                input,
                attempt,
            } => Effect::Activity {
                generation,
                task_id,
                name,
                input,
                attempt,
            },
            StoredEffect::Timer {
                generation,
                task_id,
                fire_at,
            } => Effect::Timer {
                generation,
                task_id,
                fire_at,
            },
        }
    }
}

fn first_attempt() -> u32 {
    1
}

fn parent_task(instance_id: String, generation: u32, task_id: u64) -> ParentTask {
    ParentTask {
        instance_id,
        generation,
        task_id,
    }
}
