//! Testing one entity function on its own: operations applied one after
//! another to a state kept in memory, as the host applies them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entities::{EntityFunction, entity_function};
use super::records::{EntitySignal, StartedOrchestration};
use super::{decode, parse, to_json};
use crate::wire::{EntityAction, EntityOperation};
use crate::{EntityContext, EntityId, Error};

/// An entity under test: its function, its ID and its state.
///
/// [`call`](Self::call) applies an operation as the host would: on `Ok`
/// the new state is kept and the signals and starts it asked for are
/// recorded; on `Err` the state stays as it was and nothing is recorded.
///
/// ```
/// use reprise_sdk::testing::EntityTest;
/// use reprise_sdk::{EntityContext, Error};
///
/// fn counter(ctx: &mut EntityContext) -> Result<i64, Error> {
///     let mut value: i64 = ctx.state_or_default()?;
///     match ctx.operation() {
///         "add" => value += ctx.input::<i64>()?,
///         "get" => {}
///         other => return Err(Error::new(format!("no operation '{other}'"))),
///     }
///     ctx.set_state(value)?;
///     Ok(value)
/// }
///
/// let mut test = EntityTest::new(counter).with_state(40);
/// assert_eq!(test.call::<i64>("add", 2), Ok(42));
/// assert!(test.call::<i64>("explode", ()).is_err());
/// assert_eq!(test.state::<i64>(), Some(42), "a failed operation changes nothing");
/// ```
pub struct EntityTest {
    function: EntityFunction,
    id: EntityId,
    state: Option<String>,
    signals: Vec<EntitySignal>,
    started_orchestrations: Vec<StartedOrchestration>,
}

impl EntityTest {
    /// A test of `function`, an entity function like the ones registered
    /// with [`export_entities!`](crate::export_entities), as entity
    /// `@testentity@test-key` with no state until told otherwise.
    pub fn new<F, T, E>(function: F) -> EntityTest
    where
        F: FnMut(&mut EntityContext) -> Result<T, E> + 'static,
        T: Serialize,
        E: std::fmt::Display + 'static,
    {
        EntityTest {
            function: entity_function(function),
            id: EntityId::new("TestEntity", "test-key"),
            state: None,
            signals: Vec::new(),
            started_orchestrations: Vec::new(),
        }
    }

    /// The entity's ID, as [`EntityContext::id`] shows it.
    pub fn id(mut self, id: EntityId) -> Self {
        self.id = id;
        self
    }

    /// The state the entity starts with.
    pub fn with_state(mut self, state: impl Serialize) -> Self {
        self.state = Some(to_json(state, "entity state"));
        self
    }

    /// Applies `operation` with `input`: the operation's output decoded as
    /// `T`, or its error.
    ///
    /// # Panics
    ///
    /// If the output does not decode as `T`.
    pub fn call<T: DeserializeOwned>(
        &mut self,
        operation: &str,
        input: impl Serialize,
    ) -> Result<T, Error> {
        let operation = EntityOperation {
            name: operation.to_owned(),
            input: to_json(input, &format!("input of operation '{operation}'")),
        };
        let outcome = (self.function)(self.id.to_wire(), self.state.clone(), operation);
        let output = outcome.output.map_err(Error::from_failure)?;
        self.state = outcome.state;
        for action in outcome.actions {
            self.record(action);
        }
        Ok(decode(&parse(&output), "operation's output"))
    }

    /// The entity's state decoded as `T`; `None` if it has none.
    ///
    /// # Panics
    ///
    /// If the state does not decode as `T`.
    pub fn state<T: DeserializeOwned>(&self) -> Option<T> {
        let state = self.state.as_deref()?;
        Some(decode(&parse(state), "entity state"))
    }

    /// The signals the entity's operations sent, in order.
    pub fn signals(&self) -> &[EntitySignal] {
        &self.signals
    }

    /// The orchestrations the entity's operations started, in order.
    pub fn started_orchestrations(&self) -> &[StartedOrchestration] {
        &self.started_orchestrations
    }

    fn record(&mut self, action: EntityAction) {
        match action {
            EntityAction::SignalEntity(signal) => self.signals.push(EntitySignal {
                target: EntityId::from_wire(signal.target),
                operation: signal.operation,
                input: parse(&signal.input),
            }),
            EntityAction::StartOrchestration(start) => {
                self.started_orchestrations.push(StartedOrchestration {
                    name: start.name,
                    instance_id: start.instance_id,
                    input: parse(&start.input),
                });
            }
        }
    }
}

impl std::fmt::Debug for EntityTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityTest")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
