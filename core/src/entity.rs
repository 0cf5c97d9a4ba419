//! Durable entities as the store keeps them.
//!
//! An entity is an instance whose ID is `@{name}@{key}` ([`EntityId`]):
//! its row is created by the first message addressed to it
//! ([`Message::addresses_entity`]), it never finishes, and its history is
//! always exactly one entry, [`HistoryEntry::EntityState`]: its state, the
//! orchestration that holds it locked, and the messages it put aside while
//! locked. Each episode replaces that entry, so an entity's storage does
//! not grow with the operations it applies.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{HistoryEntry, InstanceId, Message, Millis};
use crate::store::NewInstance;

/// Which entity: the entity function's name (compared case-insensitively,
/// so kept lowercase) and a key (exact).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    name: String,
    key: String,
}

impl EntityId {
    pub fn new(name: &str, key: &str) -> EntityId {
        EntityId {
            name: name.to_lowercase(),
            key: key.to_owned(),
        }
    }

    /// `new`, if the name is not empty and has no `@`, and the ID it
    /// makes is a valid instance ID; else why not.
    pub fn checked(name: &str, key: &str) -> Result<EntityId, String> {
        if name.is_empty() || name.contains('@') {
            return Err(format!(
                "invalid entity name '{name}': it must not be empty or contain '@'"
            ));
        }
        let id = EntityId::new(name, key);
        InstanceId::parse(&id.instance_id())
            .map_err(|error| format!("invalid entity ID {id}: {error}"))?;
        Ok(id)
    }

    /// The entity an instance ID names, if it names one: `@name@key`,
    /// split at the second `@` (keys may contain `@`, names may not).
    pub fn of_instance(instance_id: &str) -> Option<EntityId> {
        let rest = instance_id.strip_prefix('@')?;
        let (name, key) = rest.split_once('@')?;
        (!name.is_empty()).then(|| EntityId::new(name, key))
    }

    /// Whether `instance_id` is an entity's: what no orchestration's may be.
    pub fn is_entity(instance_id: &str) -> bool {
        instance_id.starts_with('@')
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its instance ID, `@name@key`.
    pub fn instance_id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

/// Who sent an entity a message: an orchestration's generation (or an
/// entity, as generation 0 of its instance), and for a call or a lock the
/// task that awaits the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub instance_id: String,
    pub generation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<u64>,
}

impl Sender {
    /// Whether `other` is the same instance's same generation (whatever
    /// the task): a lock's holder is a generation, not one task.
    pub fn same_generation(&self, other: &Sender) -> bool {
        self.instance_id == other.instance_id && self.generation == other.generation
    }

    /// Whether `release`, the holder a release names, is this lock
    /// holder: the same lock (a generation may lock again after a
    /// release), or any lock of its generation for a release that names
    /// none (as hosts before 2026-12-04 sent them).
    pub fn released_by(&self, release: &Sender) -> bool {
        self.same_generation(release)
            && (release.task_id.is_none() || self.task_id == release.task_id)
    }
}

/// An entity's stored record: the whole of what its history holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityRecord {
    /// Its state (JSON); `None`: it does not exist (never set, or deleted).
    pub state: Option<String>,
    /// The orchestration generation that holds it locked.
    pub locked_by: Option<Sender>,
    /// Messages from others than the holder, put aside while it was
    /// locked, in arrival order: applied once it is released.
    pub deferred: Vec<Message>,
    /// When it last applied an operation.
    pub last_operation: Millis,
}

impl EntityRecord {
    /// The record a history holds (empty if it holds none: a new entity).
    pub fn from_history(history: &[HistoryEntry]) -> EntityRecord {
        history
            .iter()
            .rev()
            .find_map(|entry| match entry {
                HistoryEntry::EntityState {
                    timestamp,
                    state,
                    locked_by,
                    deferred,
                } => Some(EntityRecord {
                    state: state.clone(),
                    locked_by: locked_by.clone(),
                    deferred: deferred.clone(),
                    last_operation: *timestamp,
                }),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Whether there is nothing to keep: no state, no lock, nothing
    /// waiting for one (its row may go).
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.locked_by.is_none() && self.deferred.is_empty()
    }

    /// The history entry that stores it.
    pub fn into_entry(self) -> HistoryEntry {
        HistoryEntry::EntityState {
            timestamp: self.last_operation,
            state: self.state,
            locked_by: self.locked_by,
            deferred: self.deferred,
        }
    }
}

impl NewInstance {
    /// The row the first message to entity `id` creates.
    pub fn entity(id: &EntityId, now: Millis) -> NewInstance {
        NewInstance {
            id: id.instance_id(),
            name: id.name().to_owned(),
            input: "null".to_owned(),
            now,
            parent: None,
            version: None,
            trace: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_lowercase_the_name_and_keep_the_key() {
        let id = EntityId::new("Counter", "Cats@Home");
        assert_eq!(id.instance_id(), "@counter@Cats@Home");
        assert_eq!(EntityId::of_instance("@counter@Cats@Home"), Some(id));
        assert_eq!(EntityId::of_instance("@@key"), None);
        assert_eq!(EntityId::of_instance("counter@key"), None);
        assert_eq!(
            EntityId::of_instance("@counter@"),
            Some(EntityId::new("counter", ""))
        );
    }

    #[test]
    fn a_record_round_trips_through_its_history_entry() {
        let record = EntityRecord {
            state: Some("5".into()),
            locked_by: Some(Sender {
                instance_id: "transfer".into(),
                generation: 2,
                task_id: Some(3),
            }),
            deferred: vec![Message::EntityOperation {
                operation: "add".into(),
                input: "1".into(),
                sender: None,
                accepted_at: 7,
            }],
            last_operation: 42,
        };
        let entry = record.clone().into_entry();
        let stored = serde_json::to_string(&entry).unwrap();
        let entry: HistoryEntry = serde_json::from_str(&stored).unwrap();
        assert_eq!(EntityRecord::from_history(&[entry]), record);
        assert_eq!(EntityRecord::from_history(&[]), EntityRecord::default());
    }
}
