//! Entities: small addressable state objects, each applying operations one
//! at a time. An entity function is called once per operation with an
//! [`EntityContext`] holding the entity's state; what it leaves there is
//! stored, whole, once it returns `Ok`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{
    self, EntityAction, EntityOperation, EntityOutcome, Failure, SignalEntity, StartOrchestration,
};
use crate::{EntityId, Error};

/// What an entity function sees while it applies one operation: which
/// entity it is, the operation and its input, and the entity's state, which
/// it may change.
///
/// An entity function is `fn(&mut EntityContext) -> Result<T, E>` with
/// `T: Serialize` (what the operation returns to a caller that awaits it)
/// and `E: Display`. On `Ok` the state as the function left it is stored
/// and the signals and starts it asked for are sent; on `Err` nothing
/// changes: the state stays as it was and nothing is sent.
///
/// ```
/// use reprise_sdk::{EntityContext, Error};
///
/// /// A counter: "add" adds its input, "reset" sets it to zero, "get" reads it.
/// fn counter(ctx: &mut EntityContext) -> Result<i64, Error> {
///     let mut value: i64 = ctx.state_or_default()?;
///     match ctx.operation() {
///         "add" => value += ctx.input::<i64>()?,
///         "reset" => value = 0,
///         "get" => {}
///         other => return Err(Error::new(format!("no operation '{other}'"))),
///     }
///     ctx.set_state(value)?;
///     Ok(value)
/// }
/// # let mut test = reprise_sdk::testing::EntityTest::new(counter);
/// # assert_eq!(test.call::<i64>("ADD", 2).unwrap(), 2);
/// ```
#[derive(Debug)]
pub struct EntityContext {
    id: EntityId,
    operation: String,
    input: String,
    state: Option<String>,
    actions: Vec<EntityAction>,
}

impl EntityContext {
    pub(crate) fn new(id: EntityId, state: Option<String>, operation: EntityOperation) -> Self {
        EntityContext {
            id,
            operation: operation.name.to_lowercase(),
            input: operation.input,
            state,
            actions: Vec::new(),
        }
    }

    /// Which entity this is.
    pub fn id(&self) -> &EntityId {
        &self.id
    }

    /// The operation's name, in lower case: operation names are
    /// case-insensitive (as in Durable Functions), so match it against
    /// lower-case names.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The operation's input decoded as `T`. A JSON string whose content
    /// fits `T` is decoded from its content, as
    /// [`OrchestrationContext::input`](crate::OrchestrationContext::input)
    /// does.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        crate::payload::decode(&self.input).map_err(|error| {
            Error::new(format!(
                "the input of operation '{}' does not have the expected shape: {error}",
                self.operation
            ))
        })
    }

    /// Whether the entity has a state (it does not before its first
    /// [`set_state`](Self::set_state), nor after [`delete_state`](Self::delete_state)).
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// The entity's state decoded as `T`; `None` if it has none.
    pub fn state<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        serde_json::from_str(state).map(Some).map_err(|error| {
            Error::new(format!(
                "the state of entity '{}' does not have the expected shape: {error}",
                self.id
            ))
        })
    }

    /// The entity's state decoded as `T`, or `T::default()` if it has none.
    pub fn state_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        Ok(self.state()?.unwrap_or_default())
    }

    /// Replaces the state with `value`, stored when the function returns `Ok`.
    pub fn set_state(&mut self, value: impl Serialize) -> Result<(), Error> {
        self.state = Some(serde_json::to_string(&value)?);
        Ok(())
    }

    /// Deletes the entity once the function returns `Ok`: its next
    /// operation finds no state.
    pub fn delete_state(&mut self) {
        self.state = None;
    }

    /// Sends operation `operation` with `input` to entity `target` once
    /// this operation's new state is stored; fire and forget.
    pub fn signal_entity(
        &mut self,
        target: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), Error> {
        let input = serde_json::to_string(&input)?;
        self.actions.push(EntityAction::SignalEntity(SignalEntity {
            target: target.to_wire(),
            operation: operation.to_owned(),
            input,
        }));
        Ok(())
    }

    /// Starts an instance of the orchestrator `name` once this operation's
    /// new state is stored; fire and forget. Returns its ID: `instance_id`,
    /// or by default a random UUID (entities are not replayed, so any ID
    /// will do). Nothing happens if an instance with that ID exists.
    pub fn start_orchestration(
        &mut self,
        name: &str,
        instance_id: Option<&str>,
        input: impl Serialize,
    ) -> Result<String, Error> {
        let input = serde_json::to_string(&input)?;
        let instance_id =
            instance_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        self.actions
            .push(EntityAction::StartOrchestration(StartOrchestration {
                name: name.to_owned(),
                instance_id: instance_id.clone(),
                input,
            }));
        Ok(instance_id)
    }
}

/// Applies `operation` to entity `id` in state `state` with `function`:
/// the outcome the host stores (on an error, the state as it was and no
/// actions).
pub fn run_entity<F, T, E>(
    function: F,
    id: wire::EntityId,
    state: Option<String>,
    operation: EntityOperation,
) -> EntityOutcome
where
    F: FnOnce(&mut EntityContext) -> Result<T, E>,
    T: Serialize,
    E: std::fmt::Display + 'static,
{
    let mut context = EntityContext::new(EntityId::from_wire(id), state.clone(), operation);
    let result = function(&mut context)
        .map_err(Error::failure_of)
        .and_then(|output| {
            serde_json::to_string(&output).map_err(|error| {
                Error::new(format!("the operation's output is not valid JSON: {error}"))
                    .into_failure()
            })
        });
    match result {
        Ok(output) => EntityOutcome {
            state: context.state,
            output: Ok(output),
            actions: context.actions,
        },
        Err(failure) => failed(state, failure),
    }
}

/// The outcome of an operation on an entity this component does not have.
pub fn no_such_entity(id: wire::EntityId, state: Option<String>, names: &[&str]) -> EntityOutcome {
    let message = format!(
        "this component has no entity named '{}'; it has {names:?}",
        id.name
    );
    let failure = Error::new(message)
        .with_kind("not-found")
        .non_retryable()
        .into_failure();
    failed(state, failure)
}

fn failed(state: Option<String>, failure: Failure) -> EntityOutcome {
    EntityOutcome {
        state,
        output: Err(failure),
        actions: Vec::new(),
    }
}

/// Whether the entity `id` is the one registered as `name`: entity names
/// are case-insensitive.
pub fn entity_name_is(id: &wire::EntityId, name: &str) -> bool {
    crate::context::names_match(&id.name, name)
}
