//! Write durable orchestrators, activities and entities for Reprise in Rust.
//!
//! An orchestrator is an `async fn` that takes an [`OrchestrationContext`] and
//! returns `Result<T, E>`, where `T` serializes to JSON and `E` displays as an
//! error message (an [`Error`] also carries a kind and whether retrying can
//! help). Activities are plain functions (see [`export_activities!`]);
//! entities are functions of an [`EntityContext`] that apply one operation
//! to a small stored state (see [`export_entities!`]). Compile the crate as
//! a `cdylib` for `wasm32-wasip2`, drop the `.wasm` into the host's
//! functions folder, and start instances over HTTP.
//!
//! ```no_run
//! use reprise_sdk::{Error, OrchestrationContext};
//!
//! /// Counts "incr"/"decr" operations forever, one generation per operation.
//! async fn counter(ctx: OrchestrationContext) -> Result<i64, Error> {
//!     let mut count: i64 = ctx.input::<Option<i64>>()?.unwrap_or(0);
//!     match ctx.wait_for_event::<String>("operation").await?.as_str() {
//!         "incr" => count += 1,
//!         "decr" => count -= 1,
//!         _ => return Ok(count),
//!     }
//!     ctx.continue_as_new(count)?;
//!     Ok(count)
//! }
//!
//! reprise_sdk::export_orchestrators! {
//!     "E3_Counter" => counter,
//! }
//! # fn main() {}
//! ```
//!
//! # Determinism
//!
//! The host replays an orchestrator's history whenever it needs to rebuild its
//! state, so the function must take the same decisions every time it sees the
//! same events. Use [`OrchestrationContext::current_time`] and
//! [`OrchestrationContext::new_uuid`] instead of the system clock and random
//! numbers, and [`OrchestrationContext::log`] instead of printing (it writes
//! each line once, not at every replay); do any I/O in activities, never in
//! orchestrators.
//! The host enforces this: an orchestrator's clock reads the episode's recorded
//! time, its randomness is seeded per instance, and it has no filesystem,
//! network or environment.
//!
//! # Testing
//!
//! Orchestrators are ordinary Rust: test them natively with `cargo test`, no
//! wasm and no host involved. [`testing::OrchestrationTest`] runs an
//! orchestrator episode by episode as the host does, with activities and
//! sub-orchestrations answered by the test (the real activity functions,
//! closures or fixed results), events raised when the test says, and timers
//! fired by a virtual clock the test moves; then assert on the outcome, the
//! custom status and the actions taken. Entities run in the same test on
//! states kept in memory, and [`testing::EntityTest`] tests one entity
//! function on its own.
//!
//! ```
//! use reprise_sdk::testing::OrchestrationTest;
//! # use reprise_sdk::{Error, OrchestrationContext};
//! # async fn counter(ctx: OrchestrationContext) -> Result<i64, Error> {
//! #     let mut count: i64 = ctx.input::<Option<i64>>()?.unwrap_or(0);
//! #     match ctx.wait_for_event::<String>("operation").await?.as_str() {
//! #         "incr" => count += 1,
//! #         "decr" => count -= 1,
//! #         _ => return Ok(count),
//! #     }
//! #     ctx.continue_as_new(count)?;
//! #     Ok(count)
//! # }
//!
//! // The counter above, followed from generation to generation.
//! let mut test = OrchestrationTest::new(counter).follow_continue_as_new();
//! test.raise_event("operation", "incr");
//! test.raise_event("operation", "incr");
//! let outcome = test.raise_event("operation", "end");
//! assert_eq!(outcome.output::<i64>(), Some(2));
//! ```
//!
//! Where to read next: [`OrchestrationContext`] for everything an orchestrator
//! can do, [`EntityContext`] for entities, [`export!`] for registration,
//! [`testing`] for tests.

mod activity;
mod combinators;
mod context;
mod entity;
mod entity_calls;
mod entity_id;
mod error;
mod execution;
mod logging;
mod payload;
mod tasks;
pub mod testing;

pub use activity::ActivityContext;
pub use combinators::{Either, when_all, when_any, when_either};
pub use context::{EventFuture, OrchestrationContext};
pub use entity::EntityContext;
pub use entity_calls::{CriticalSection, LockFuture};
pub use entity_id::EntityId;
pub use error::Error;
pub use logging::LogLevel;
pub use tasks::{RetryPolicy, TaskCall, Timer};
pub use uuid::Uuid;

/// Bindings generated from the host contract in `wit/`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "functions",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_functions",
        default_bindings_module: "reprise_sdk::bindings",
        additional_derives: [PartialEq, Clone],
    });
}

/// The types the host and guest exchange, under shorter names.
pub mod wire {
    pub use crate::bindings::exports::reprise::orchestration::activity::ActivityContext;
    pub use crate::bindings::exports::reprise::orchestration::entity::{
        EntityAction, Operation as EntityOperation, Outcome as EntityOutcome,
    };
    pub use crate::bindings::reprise::orchestration::types::{
        Action, CallEntity, ContinueAsNew, CreateTimer, EntityId, EventRaised, ExecutionStarted,
        Failure, HistoryEvent, LockEntities, ScheduleActivity, SendEvent, SignalEntity,
        StartOrchestration, StartSubOrchestration, TaskCompleted, TaskFailed, TaskId,
    };
}

/// Registers the orchestrators a component exports, one line each:
/// `"Name" => function`. Use one registration macro per component crate:
/// this one, [`export_activities!`], [`export_entities!`], or [`export!`]
/// for several kinds.
///
/// Each function is an `async fn(OrchestrationContext) -> Result<T, E>` with
/// `T: serde::Serialize` and `E: std::fmt::Display`.
///
/// ```no_run
/// use reprise_sdk::{Error, OrchestrationContext};
///
/// async fn hello(ctx: OrchestrationContext) -> Result<String, Error> {
///     let name: String = ctx.input()?;
///     Ok(format!("Hello {name}!"))
/// }
///
/// async fn wait_for_approval(ctx: OrchestrationContext) -> Result<bool, Error> {
///     ctx.wait_for_event("approval").await
/// }
///
/// reprise_sdk::export_orchestrators! {
///     "Hello" => hello,
///     "WaitForApproval" => wait_for_approval,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_orchestrators {
    ($($name:literal => $function:path),* $(,)?) => {
        $crate::export! {
            orchestrators { $($name => $function),* }
            activities {}
        }
    };
}

/// Registers the activities a component exports, one line each:
/// `"Name" => function`.
///
/// An activity is a plain function `fn(T) -> Result<U, E>` with
/// `T: DeserializeOwned`, `U: Serialize` and `E: Display`. Activities are
/// not replayed: they may use the clock, randomness and (where the host
/// allows) the network. They run at least once; make them idempotent
/// ([`ActivityContext::current`] gives an idempotency key). An [`Error`]
/// they return keeps its kind and retryability for the orchestrator.
///
/// ```no_run
/// fn say_hello(city: String) -> Result<String, reprise_sdk::Error> {
///     Ok(format!("Hello {city}!"))
/// }
///
/// reprise_sdk::export_activities! {
///     "SayHello" => say_hello,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_activities {
    ($($name:literal => $function:path),* $(,)?) => {
        $crate::export! {
            orchestrators {}
            activities { $($name => $function),* }
        }
    };
}

/// Registers the entities a component exports, one line each:
/// `"Name" => function`.
///
/// An entity function is `fn(&mut EntityContext) -> Result<T, E>` with
/// `T: Serialize` and `E: Display`; see [`EntityContext`]. Entity names are
/// case-insensitive: an operation for `@counter@x` runs the entity
/// registered as `"Counter"`.
///
/// ```no_run
/// use reprise_sdk::{EntityContext, Error};
///
/// fn counter(ctx: &mut EntityContext) -> Result<i64, Error> {
///     let value = ctx.state_or_default::<i64>()? + ctx.input::<Option<i64>>()?.unwrap_or(0);
///     ctx.set_state(value)?;
///     Ok(value)
/// }
///
/// reprise_sdk::export_entities! {
///     "Counter" => counter,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_entities {
    ($($name:literal => $function:path),* $(,)?) => {
        $crate::export! {
            entities { $($name => $function),* }
        }
    };
}

/// Registers the orchestrators, activities and entities of one component,
/// in sections of one line per function; a section may be left out (but
/// the ones given come in this order).
///
/// ```no_run
/// use reprise_sdk::{EntityContext, EntityId, Error, OrchestrationContext};
///
/// async fn greet_all(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
///     let mut greetings = Vec::new();
///     for city in ["Tokyo", "Seattle", "London"] {
///         greetings.push(ctx.call_activity("SayHello", city).await?);
///         ctx.signal_entity(&EntityId::new("Greetings", "total"), "add", 1)?;
///     }
///     Ok(greetings)
/// }
///
/// fn say_hello(city: String) -> Result<String, Error> {
///     Ok(format!("Hello {city}!"))
/// }
///
/// fn greetings(ctx: &mut EntityContext) -> Result<u64, Error> {
///     let total = ctx.state_or_default::<u64>()? + ctx.input::<u64>()?;
///     ctx.set_state(total)?;
///     Ok(total)
/// }
///
/// reprise_sdk::export! {
///     orchestrators { "GreetAll" => greet_all }
///     activities { "SayHello" => say_hello }
///     entities { "Greetings" => greetings }
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export {
    (
        $(orchestrators { $($orchestrator:literal => $orchestrator_fn:path),* $(,)? })?
        $(activities { $($activity:literal => $activity_fn:path),* $(,)? })?
        $(entities { $($entity:literal => $entity_fn:path),* $(,)? })?
    ) => {
        #[doc(hidden)]
        pub struct __RepriseComponent;

        impl $crate::__private::Registry for __RepriseComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$($(::std::string::String::from($orchestrator)),*)?]
            }

            fn start(
                name: &str,
                context: $crate::OrchestrationContext,
            ) -> ::std::option::Option<$crate::__private::RunningOrchestrator> {
                $($(
                    if name == $orchestrator {
                        return ::std::option::Option::Some($crate::__private::run($orchestrator_fn, context));
                    }
                )*)?
                let _ = (name, context);
                ::std::option::Option::None
            }
        }

        impl $crate::__private::Guest for __RepriseComponent {
            type Execution = $crate::__private::Execution<__RepriseComponent>;

            fn names() -> ::std::vec::Vec<::std::string::String> {
                <Self as $crate::__private::Registry>::names()
            }
        }

        impl $crate::__private::ActivityGuest for __RepriseComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$($(::std::string::String::from($activity)),*)?]
            }

            fn run(
                name: ::std::string::String,
                input: ::std::string::String,
                context: $crate::wire::ActivityContext,
            ) -> ::std::result::Result<::std::string::String, $crate::wire::Failure> {
                let context = $crate::__private::activity_context(context);
                $($(
                    if name == $activity {
                        return $crate::__private::run_activity($activity_fn, &input, context);
                    }
                )*)?
                let _ = (input, context);
                ::std::result::Result::Err($crate::__private::no_such_activity(&name))
            }
        }

        impl $crate::__private::EntityGuest for __RepriseComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$($(::std::string::String::from($entity)),*)?]
            }

            fn run(
                id: $crate::wire::EntityId,
                state: ::std::option::Option<::std::string::String>,
                operation: $crate::wire::EntityOperation,
            ) -> $crate::wire::EntityOutcome {
                $($(
                    if $crate::__private::entity_name_is(&id, $entity) {
                        return $crate::__private::run_entity($entity_fn, id, state, operation);
                    }
                )*)?
                let _ = operation;
                $crate::__private::no_such_entity(id, state, &[$($($entity),*)?])
            }
        }

        $crate::bindings::__export_functions!(__RepriseComponent with_types_in $crate::bindings);
    };
}

/// Support for the registration macros; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::activity::{activity_context, no_such_activity, run_activity};
    pub use crate::bindings::exports::reprise::orchestration::activity::Guest as ActivityGuest;
    pub use crate::bindings::exports::reprise::orchestration::entity::Guest as EntityGuest;
    pub use crate::bindings::exports::reprise::orchestration::orchestrator::Guest;
    pub use crate::entity::{entity_name_is, no_such_entity, run_entity};
    pub use crate::execution::{Execution, Registry, RunningOrchestrator, run};
}
