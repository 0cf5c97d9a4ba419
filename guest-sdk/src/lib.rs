//! Write durable orchestrators for Reprise in Rust.
//!
//! An orchestrator is an `async fn` that takes an [`OrchestrationContext`] and
//! returns `Result<T, E>`, where `T` serializes to JSON and `E` displays as an
//! error message. Compile the crate as a `cdylib` for `wasm32-wasip2`, drop the
//! `.wasm` into the host's functions folder, and start instances over HTTP.
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
//! numbers; do any I/O in activities (a later version), never in orchestrators.
//! The host enforces this: an orchestrator's clock reads the episode's recorded
//! time, its randomness is seeded per instance, and it has no filesystem,
//! network or environment.
//!
//! Where to read next: [`OrchestrationContext`] for everything an orchestrator
//! can do, [`export_orchestrators!`] for registration.

mod combinators;
mod context;
mod error;
mod execution;
mod tasks;

pub use combinators::{Either, when_all, when_any, when_either};
pub use context::{EventFuture, OrchestrationContext};
pub use error::Error;
pub use tasks::Timer;
pub use uuid::Uuid;

/// Bindings generated from the host contract in `wit/`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "orchestrations",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_orchestrations",
        default_bindings_module: "reprise_sdk::bindings",
        additional_derives: [PartialEq, Clone],
    });
}

/// The types the host and guest exchange, under shorter names.
pub mod wire {
    pub use crate::bindings::reprise::orchestration::types::{
        Action, ContinueAsNew, CreateTimer, EventRaised, ExecutionStarted, HistoryEvent, TaskId,
    };
}

/// Registers the orchestrators a component exports, one line each:
/// `"Name" => function`. Use it once per component crate.
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
    ($($name:literal => $function:path),+ $(,)?) => {
        #[doc(hidden)]
        pub struct __RepriseComponent;

        impl $crate::__private::Registry for __RepriseComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$(::std::string::String::from($name)),+]
            }

            fn start(
                name: &str,
                context: $crate::OrchestrationContext,
            ) -> ::std::option::Option<$crate::__private::RunningOrchestrator> {
                $(
                    if name == $name {
                        return ::std::option::Option::Some($crate::__private::run($function, context));
                    }
                )+
                ::std::option::Option::None
            }
        }

        impl $crate::__private::Guest for __RepriseComponent {
            type Execution = $crate::__private::Execution<__RepriseComponent>;

            fn names() -> ::std::vec::Vec<::std::string::String> {
                <Self as $crate::__private::Registry>::names()
            }
        }

        $crate::bindings::__export_orchestrations!(__RepriseComponent with_types_in $crate::bindings);
    };
}

/// Support for [`export_orchestrators!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::reprise::orchestration::orchestrator::Guest;
    pub use crate::execution::{Execution, Registry, RunningOrchestrator, run};
}
