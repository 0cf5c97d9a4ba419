//! Entities in a test: entity functions run in-process, on states kept in
//! memory, one operation at a time in the order they are sent.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::entity::run_entity;
use crate::wire::{EntityAction, EntityOperation, EntityOutcome, Failure};
use crate::{EntityContext, EntityId};

/// An entity function, as the host calls it.
pub(super) type EntityFunction =
    Box<dyn FnMut(crate::wire::EntityId, Option<String>, EntityOperation) -> EntityOutcome>;

/// Operations applied in a row (signals sending signals) before a test is
/// stopped: entities that keep signalling each other would never stop.
const MAX_CHAINED_OPERATIONS: usize = 10_000;

/// `function` as the host calls it.
pub(super) fn entity_function<F, T, E>(mut function: F) -> EntityFunction
where
    F: FnMut(&mut EntityContext) -> Result<T, E> + 'static,
    T: Serialize,
    E: std::fmt::Display + 'static,
{
    Box::new(move |id, state, operation| run_entity(&mut function, id, state, operation))
}

/// One operation for an entity, as JSON.
struct Operation {
    target: EntityId,
    name: String,
    input: String,
}

/// The entity functions a test registered, by name, and the states of
/// their entities.
#[derive(Default)]
pub(super) struct Entities {
    functions: BTreeMap<String, EntityFunction>,
    states: BTreeMap<EntityId, String>,
}

impl Entities {
    /// Runs entities named `name` (case-insensitive) with `function`.
    pub(super) fn register(&mut self, name: &str, function: EntityFunction) {
        self.functions.insert(name.to_lowercase(), function);
    }

    pub(super) fn set_state(&mut self, id: EntityId, state: String) {
        self.states.insert(id, state);
    }

    /// The state of entity `id` as JSON; `None` if it has none.
    pub(super) fn state(&self, id: &EntityId) -> Option<&str> {
        self.states.get(id).map(String::as_str)
    }

    pub(super) fn names(&self) -> Vec<&str> {
        self.functions.keys().map(String::as_str).collect()
    }

    /// Applies `operation` with `input` to `target`, then the signals it
    /// sends, in order (starts of orchestrations are not followed). `None`
    /// if no function is registered for the target's name.
    pub(super) fn apply(
        &mut self,
        target: &EntityId,
        operation: &str,
        input: &str,
    ) -> Option<Result<String, Failure>> {
        let (result, signals) = self.apply_one(Operation {
            target: target.clone(),
            name: operation.to_owned(),
            input: input.to_owned(),
        })?;
        self.apply_signals(signals);
        Some(result)
    }

    /// Applies `signal` if its entity is registered, then what it sends.
    pub(super) fn signal(&mut self, target: &EntityId, operation: &str, input: &str) {
        self.apply(target, operation, input);
    }

    fn apply_signals(&mut self, signals: Vec<Operation>) {
        let mut queue = VecDeque::from(signals);
        let mut applied = 0;
        while let Some(signal) = queue.pop_front() {
            applied += 1;
            assert!(
                applied <= MAX_CHAINED_OPERATIONS,
                "entities sent more than {MAX_CHAINED_OPERATIONS} signals in a row: they keep \
                 signalling each other and may never stop"
            );
            if let Some((_, more)) = self.apply_one(signal) {
                queue.extend(more);
            }
        }
    }

    /// Applies one operation: its result and the signals it sends.
    fn apply_one(
        &mut self,
        operation: Operation,
    ) -> Option<(Result<String, Failure>, Vec<Operation>)> {
        let function = self.functions.get_mut(operation.target.name())?;
        let state = self.states.get(&operation.target).cloned();
        let outcome = function(
            operation.target.to_wire(),
            state,
            EntityOperation {
                name: operation.name,
                input: operation.input,
            },
        );
        if outcome.output.is_err() {
            return Some((outcome.output, Vec::new()));
        }
        match outcome.state {
            Some(state) => self.states.insert(operation.target, state),
            None => self.states.remove(&operation.target),
        };
        let signals = outcome.actions.into_iter().filter_map(signal_of).collect();
        Some((outcome.output, signals))
    }
}

fn signal_of(action: EntityAction) -> Option<Operation> {
    match action {
        EntityAction::SignalEntity(signal) => Some(Operation {
            target: EntityId::from_wire(signal.target),
            name: signal.operation,
            input: signal.input,
        }),
        EntityAction::StartOrchestration(_) => None,
    }
}
