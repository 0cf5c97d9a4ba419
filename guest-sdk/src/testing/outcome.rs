//! Where the orchestration under test stands: running, or how it ended.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::records::RaisedEvent;
use crate::Error;

/// Where the orchestration under test stands, as a status query would show it.
///
/// ```
/// use reprise_sdk::testing::Outcome;
/// use serde_json::json;
///
/// let outcome = Outcome::Completed(json!(["Hello Tokyo!"]));
/// assert_eq!(outcome.output::<Vec<String>>(), Some(vec!["Hello Tokyo!".to_owned()]));
/// assert_eq!(outcome.error(), None);
/// assert!(!outcome.is_running());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not finished: waiting for an event or a timer, or not started yet.
    Running,
    /// The orchestrator returned `Ok`: its output as JSON.
    Completed(Value),
    /// The orchestrator returned `Err`: the failure the host would record
    /// (its message, kind and retryability).
    Failed(Error),
    /// The generation ended with continue-as-new, and the test was not told
    /// to follow it (see
    /// [`OrchestrationTest::follow_continue_as_new`](super::OrchestrationTest::follow_continue_as_new)).
    ContinuedAsNew {
        /// The next generation's input.
        input: Value,
        /// Events delivered but not consumed, which the next generation
        /// would receive first.
        carried_over_events: Vec<RaisedEvent>,
    },
}

impl Outcome {
    pub fn is_running(&self) -> bool {
        matches!(self, Outcome::Running)
    }

    /// The output decoded as `T` if the orchestration completed, else `None`.
    ///
    /// # Panics
    ///
    /// If it completed with an output that does not decode as `T`.
    pub fn output<T: DeserializeOwned>(&self) -> Option<T> {
        match self {
            Outcome::Completed(output) => Some(super::decode(output, "orchestrator's output")),
            _ => None,
        }
    }

    /// The error message if the orchestration failed, else `None`.
    pub fn error(&self) -> Option<&str> {
        self.failure().map(Error::message)
    }

    /// The whole failure (kind, retryability) if the orchestration failed.
    pub fn failure(&self) -> Option<&Error> {
        match self {
            Outcome::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// The next generation's input decoded as `T` if the orchestration
    /// continued as new, else `None`.
    ///
    /// # Panics
    ///
    /// If it continued as new with an input that does not decode as `T`.
    pub fn next_input<T: DeserializeOwned>(&self) -> Option<T> {
        match self {
            Outcome::ContinuedAsNew { input, .. } => {
                Some(super::decode(input, "next generation's input"))
            }
            _ => None,
        }
    }
}

/// For messages: "completed with \[1,2\]", "failed: boom", ...
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Running => f.write_str("running"),
            Outcome::Completed(output) => write!(f, "completed with {output}"),
            Outcome::Failed(error) => write!(f, "failed: {error}"),
            Outcome::ContinuedAsNew { input, .. } => {
                write!(f, "continued as new with input {input}")
            }
        }
    }
}
