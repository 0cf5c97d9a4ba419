//! An orchestrator's side of entities: the history entries and messages
//! its entity actions become, the lock it holds, and the rules of a
//! critical section.
//!
//! A lock request goes to the first of its (sorted) entities, which takes
//! the lock and passes the request on; the last tells the orchestrator
//! (`entities-locked`). A release takes the same path, so it can never
//! overtake the request it releases (messages from one sender to one
//! entity arrive in order). The host releases an open lock when its
//! generation ends, however it ends.

use crate::entity::EntityId;
use crate::model::{HistoryEntry, Message, Millis, Sender};
use crate::runtime::wire;

/// The entity actions of one episode: what they send, and the lock the
/// current generation holds (or has asked for).
#[derive(Debug, Default)]
pub(super) struct EntityCalls {
    /// Messages for entities, in the order they were sent.
    pub(super) messages: Vec<(String, Message)>,
    /// The generation's open lock (held, or asked for).
    pub(super) open_lock: Option<OpenLock>,
}

/// A lock a generation holds or has asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OpenLock {
    /// The task that asked for it: a generation may lock again after a
    /// release, and an entity must tell its locks apart.
    pub(super) id: u64,
    /// Its entities: sorted instance IDs.
    pub(super) targets: Vec<String>,
}

impl EntityCalls {
    /// Picks up where `history`, a generation's recorded entries, leaves
    /// the lock.
    pub(super) fn after(history: &[HistoryEntry]) -> EntityCalls {
        let mut open_lock = None;
        for entry in history {
            match entry {
                HistoryEntry::EntityLockRequested { id, targets, .. } => {
                    open_lock = Some(OpenLock {
                        id: *id,
                        targets: targets.clone(),
                    });
                }
                HistoryEntry::EntitiesUnlocked { .. } => open_lock = None,
                _ => {}
            }
        }
        EntityCalls {
            messages: Vec::new(),
            open_lock,
        }
    }

    /// Records `action` of generation `sender` (an entity action) as its
    /// history entry and the message it sends; `Err` says which rule of a
    /// critical section it breaks (the orchestrator fails).
    pub(super) fn take(
        &mut self,
        action: wire::Action,
        sender: Sender,
        now: Millis,
    ) -> Result<HistoryEntry, String> {
        check_targets(&action)?;
        let entry = entry_of(action, now).expect("an entity action");
        match &entry {
            HistoryEntry::EntitySignaled {
                target,
                operation,
                input,
                ..
            } => self.send_operation(target, operation, input, sender, now),
            HistoryEntry::EntityCalled {
                id,
                target,
                operation,
                input,
                ..
            } => {
                if let Some(locked) = &self.open_lock
                    && !locked.targets.contains(target)
                {
                    return Err(format!(
                        "the orchestrator called entity {target} inside a critical section that does not lock it; call only the entities it locks"
                    ));
                }
                let caller = Sender {
                    task_id: Some(*id),
                    ..sender
                };
                self.send_operation(target, operation, input, caller, now);
            }
            HistoryEntry::EntityLockRequested { id, targets, .. } => {
                if self.open_lock.is_some() {
                    return Err("the orchestrator asked for a lock inside a critical section; critical sections do not nest".to_owned());
                }
                let Some(first) = targets.first() else {
                    return Err("the orchestrator asked to lock no entities".to_owned());
                };
                let holder = Sender {
                    task_id: Some(*id),
                    ..sender
                };
                let request = Message::EntityLock {
                    holder,
                    targets: targets.clone(),
                    position: 0,
                };
                self.messages.push((first.clone(), request));
                self.open_lock = Some(OpenLock {
                    id: *id,
                    targets: targets.clone(),
                });
            }
            HistoryEntry::EntitiesUnlocked { .. } => self.release(sender),
            _ => unreachable!("entry_of gives entity entries"),
        }
        Ok(entry)
    }

    /// Releases the open lock, if there is one, held by generation
    /// `sender`.
    pub(super) fn release(&mut self, sender: Sender) {
        let Some(OpenLock { id, targets }) = self.open_lock.take() else {
            return;
        };
        let first = targets[0].clone();
        let release = Message::EntityUnlock {
            holder: Sender {
                task_id: Some(id),
                ..sender
            },
            targets,
            position: 0,
        };
        self.messages.push((first, release));
    }

    fn send_operation(
        &mut self,
        target: &str,
        operation: &str,
        input: &str,
        sender: Sender,
        now: Millis,
    ) {
        let message = Message::EntityOperation {
            operation: operation.to_owned(),
            input: input.to_owned(),
            sender: Some(sender),
            accepted_at: now,
        };
        self.messages.push((target.to_owned(), message));
    }
}

/// Refuses an action naming an entity that cannot be (an empty name, say):
/// what it sends could reach no entity.
fn check_targets(action: &wire::Action) -> Result<(), String> {
    let targets: &[wire::EntityId] = match action {
        wire::Action::SignalEntity(signal) => std::slice::from_ref(&signal.target),
        wire::Action::CallEntity(call) => std::slice::from_ref(&call.target),
        wire::Action::LockEntities(lock) => &lock.targets,
        _ => &[],
    };
    for target in targets {
        EntityId::checked(&target.name, &target.key)
            .map_err(|why| format!("the orchestrator addressed an entity that cannot be: {why}"))?;
    }
    Ok(())
}

/// The instance ID of the entity `id` names.
pub(super) fn instance_of(id: &wire::EntityId) -> String {
    EntityId::new(&id.name, &id.key).instance_id()
}

/// The history entry recording entity action `action`; `None` for any
/// other action.
pub(super) fn entry_of(action: wire::Action, timestamp: Millis) -> Option<HistoryEntry> {
    Some(match action {
        wire::Action::SignalEntity(signal) => HistoryEntry::EntitySignaled {
            timestamp,
            target: instance_of(&signal.target),
            operation: signal.operation,
            input: signal.input,
        },
        wire::Action::CallEntity(call) => HistoryEntry::EntityCalled {
            timestamp,
            id: call.id,
            target: instance_of(&call.target),
            operation: call.operation,
            input: call.input,
        },
        wire::Action::LockEntities(lock) => {
            let mut targets: Vec<String> = lock.targets.iter().map(instance_of).collect();
            // One global order rules out deadlocks between lock holders.
            targets.sort();
            targets.dedup();
            HistoryEntry::EntityLockRequested {
                timestamp,
                id: lock.id,
                targets,
            }
        }
        wire::Action::UnlockEntities => HistoryEntry::EntitiesUnlocked { timestamp },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender {
            instance_id: "transfer".into(),
            generation: 1,
            task_id: None,
        }
    }

    fn id(name: &str, key: &str) -> wire::EntityId {
        wire::EntityId {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_lock_goes_to_the_first_entity_in_order_and_its_release_follows_it() {
        let mut calls = EntityCalls::default();
        let lock = wire::Action::LockEntities(wire::LockEntities {
            id: 4,
            targets: vec![id("Account", "b"), id("account", "a"), id("Account", "b")],
        });
        let entry = calls.take(lock, sender(), 9).unwrap();
        let targets = vec!["@account@a".to_owned(), "@account@b".to_owned()];
        assert_eq!(
            entry,
            HistoryEntry::EntityLockRequested {
                timestamp: 9,
                id: 4,
                targets: targets.clone()
            }
        );
        let call = wire::Action::CallEntity(wire::CallEntity {
            id: 5,
            target: id("counter", "x"),
            operation: "get".into(),
            input: "null".into(),
        });
        assert!(calls.take(call, sender(), 9).is_err());
        let nested = wire::Action::LockEntities(wire::LockEntities {
            id: 6,
            targets: vec![id("counter", "x")],
        });
        assert!(calls.take(nested, sender(), 9).is_err());
        let nameless = wire::Action::SignalEntity(wire::SignalEntity {
            target: id("", "x"),
            operation: "add".into(),
            input: "1".into(),
        });
        let refused = calls.take(nameless, sender(), 9).unwrap_err();
        assert!(refused.contains("invalid entity name"), "{refused}");
        calls.release(sender());
        assert_eq!(calls.open_lock, None);
        let (to, release) = calls.messages.last().unwrap();
        assert_eq!(to, "@account@a");
        let Message::EntityUnlock {
            holder, position, ..
        } = release
        else {
            panic!("not a release: {release:?}");
        };
        // It names the lock it releases (the generation may lock again).
        assert_eq!((holder.task_id, *position), (Some(4), 0));
        // The recorded history says the same.
        let recorded = [entry, HistoryEntry::EntitiesUnlocked { timestamp: 9 }];
        let open = OpenLock { id: 4, targets };
        assert_eq!(EntityCalls::after(&recorded[..1]).open_lock, Some(open));
        assert_eq!(EntityCalls::after(&recorded).open_lock, None);
    }
}
