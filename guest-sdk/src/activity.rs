//! Running an activity function for the host: JSON in, JSON or a failure
//! out, with the call's [`ActivityContext`] readable while it runs.

use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::wire::Failure;

/// Which call of an activity is running: read it with
/// [`ActivityContext::current`] inside an activity function.
///
/// Activity functions stay plain `fn(I) -> Result<O, E>`; the context is
/// there for the few that need it, e.g. to make an effect on the world
/// idempotent with [`idempotency_key`](Self::idempotency_key).
///
/// ```no_run
/// use reprise_sdk::{ActivityContext, Error};
///
/// fn charge_card(amount: u64) -> Result<String, Error> {
///     let context = ActivityContext::current().expect("runs as an activity");
///     // The same key on every run of this task, so the payment provider
///     // charges once even if the host runs the activity twice.
///     Ok(format!("charged {amount} with key {}", context.idempotency_key()))
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityContext {
    instance_id: String,
    task_id: u64,
    idempotency_key: String,
    attempt: u32,
}

thread_local! {
    /// The context of the activity running on this thread, if any.
    static CURRENT: RefCell<Option<ActivityContext>> = const { RefCell::new(None) };
}

impl ActivityContext {
    /// A context, e.g. to test an activity function that reads it: see
    /// [`enter`](Self::enter).
    pub fn new(
        instance_id: impl Into<String>,
        task_id: u64,
        idempotency_key: impl Into<String>,
        attempt: u32,
    ) -> ActivityContext {
        ActivityContext {
            instance_id: instance_id.into(),
            task_id,
            idempotency_key: idempotency_key.into(),
            attempt,
        }
    }

    /// The context of the activity function running now; `None` outside of
    /// one (in an orchestrator, say).
    pub fn current() -> Option<ActivityContext> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// The instance that scheduled the activity.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The task the activity is in that instance's current generation.
    pub fn task_id(&self) -> u64 {
        self.task_id
    }

    /// `{instance-id}/{generation}/{task-id}`: the same on every run of this
    /// task (a run repeated because a host died), different for every other
    /// task of the instance.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// Which attempt of a call under a retry policy: 1, 2, ... (1 without one).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Runs `body` with this context as the current one, restoring the
    /// previous one afterwards (even if `body` panics): what the SDK does
    /// around an activity function, and what a test of one can do.
    ///
    /// ```
    /// use reprise_sdk::ActivityContext;
    ///
    /// let context = ActivityContext::new("order-7", 2, "order-7/0/2", 1);
    /// let key = context.enter(|| ActivityContext::current().unwrap().idempotency_key().to_owned());
    /// assert_eq!(key, "order-7/0/2");
    /// ```
    pub fn enter<R>(self, body: impl FnOnce() -> R) -> R {
        struct Restore(Option<ActivityContext>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|current| *current.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|current| current.borrow_mut().replace(self));
        let _restore = Restore(previous);
        body()
    }
}

/// Decodes `input`, runs `function` in `context`, encodes its output.
pub fn run_activity<F, T, U, E>(
    function: F,
    input: &str,
    context: ActivityContext,
) -> Result<String, Failure>
where
    F: FnOnce(T) -> Result<U, E>,
    T: DeserializeOwned,
    U: Serialize,
    E: std::fmt::Display + 'static,
{
    let input: T = serde_json::from_str(input).map_err(|error| {
        invalid_data(format!(
            "the activity's input does not have the expected shape: {error}"
        ))
    })?;
    let output = context
        .enter(|| function(input))
        .map_err(Error::failure_of)?;
    serde_json::to_string(&output)
        .map_err(|error| invalid_data(format!("the activity's output is not valid JSON: {error}")))
}

/// The context the host passes, as the SDK's type.
pub fn activity_context(context: crate::wire::ActivityContext) -> ActivityContext {
    ActivityContext::new(
        context.instance_id,
        context.task_id,
        context.idempotency_key,
        context.attempt,
    )
}

/// The failure of a call to an activity this component does not have.
pub fn no_such_activity(name: &str) -> Failure {
    Error::new(format!("this component has no activity named '{name}'"))
        .with_kind("not-found")
        .non_retryable()
        .into_failure()
}

/// A failure that running again with the same data cannot mend.
fn invalid_data(message: String) -> Failure {
    Error::new(message).non_retryable().into_failure()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ActivityContext {
        ActivityContext::new("i", 3, "i/0/3", 2)
    }

    #[test]
    fn the_context_is_current_only_while_the_activity_runs() {
        let seen = run_activity(
            |(): ()| Ok::<_, Error>(ActivityContext::current().is_some()),
            "null",
            context(),
        );
        assert_eq!(seen.unwrap(), "true");
        let key = run_activity(
            |(): ()| {
                let context = ActivityContext::current().unwrap();
                Ok::<_, Error>((context.idempotency_key().to_owned(), context.attempt()))
            },
            "null",
            context(),
        );
        assert_eq!(key.unwrap(), r#"["i/0/3",2]"#);
        assert_eq!(ActivityContext::current(), None);
    }

    #[test]
    fn an_input_of_the_wrong_shape_is_not_retryable() {
        let failure = run_activity(|n: u32| Ok::<_, Error>(n), "\"x\"", context()).unwrap_err();
        assert!(!failure.retryable);
        assert!(failure.message.starts_with("the activity's input"));
    }

    #[test]
    fn the_activitys_error_keeps_its_kind() {
        let failure = run_activity(
            |(): ()| Err::<(), _>(Error::new("no").with_kind("validation")),
            "null",
            context(),
        )
        .unwrap_err();
        assert_eq!(failure.kind, "validation");
    }
}
