//! Why something failed: a kind a program can match, a message for a
//! person, and whether trying again can help.
//!
//! Stored (in inbox messages and history entries), so its serde shape is a
//! compatibility boundary. Hosts before failure details stored a failure as
//! its message alone; those still read, as a retryable `error`.

use serde::{Deserialize, Serialize};

/// A failure, as the WIT contract's `failure` record carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredFailure")]
pub struct Failure {
    pub kind: String,
    pub message: String,
    pub retryable: bool,
}

impl Failure {
    /// An error a guest returned, without a kind of its own.
    pub const ERROR: &str = "error";
    /// An activity ran past its timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The guest crashed.
    pub const TRAP: &str = "trap";
    pub const OUT_OF_MEMORY: &str = "out-of-memory";
    pub const OUT_OF_FUEL: &str = "out-of-fuel";
    /// No such activity, orchestrator or entity is loaded.
    pub const NOT_FOUND: &str = "not-found";
    /// A sub-orchestration failed without an error of its own (a trap, a
    /// limit, its code not loaded); what happened is in the message.
    pub const FAILED: &str = "failed";
    /// A sub-orchestration was terminated.
    pub const TERMINATED: &str = "terminated";
    /// A sub-orchestration's ID belongs to an instance that has not finished.
    pub const CONFLICT: &str = "conflict";
    /// A result was over the host's limits.
    pub const LIMITS: &str = "limits";

    /// A retryable failure of kind `kind`.
    pub fn new(kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.to_owned(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure of kind `kind` that trying again cannot mend.
    pub fn permanent(kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            retryable: false,
            ..Failure::new(kind, message)
        }
    }

    /// The failure a history entry records: its message and, if recorded,
    /// its details (entries older than details are retryable `error`s).
    pub fn recorded(message: &str, details: Option<&FailureDetails>) -> Failure {
        match details {
            Some(details) => Failure {
                kind: details.kind.clone(),
                message: message.to_owned(),
                retryable: details.retryable,
            },
            None => Failure::new(Failure::ERROR, message),
        }
    }

    /// What a history entry records beside the message.
    pub fn details(&self) -> FailureDetails {
        FailureDetails {
            kind: self.kind.clone(),
            retryable: self.retryable,
        }
    }
}

/// A failure's kind and retryability, kept in a history entry beside its
/// message (`error`), so entries from before details keep their shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    pub kind: String,
    pub retryable: bool,
}

/// A stored failure: a record, or a message alone (before details).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredFailure {
    Message(String),
    Record {
        kind: String,
        message: String,
        retryable: bool,
    },
}

impl From<StoredFailure> for Failure {
    fn from(stored: StoredFailure) -> Failure {
        match stored {
            StoredFailure::Message(message) => Failure::new(Failure::ERROR, message),
            StoredFailure::Record {
                kind,
                message,
                retryable,
            } => Failure {
                kind,
                message,
                retryable,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_stored_as_its_message_alone_reads_as_a_retryable_error() {
        let old: Result<String, Failure> = serde_json::from_str(r#"{"Err":"boom"}"#).unwrap();
        assert_eq!(old, Err(Failure::new(Failure::ERROR, "boom")));
        let new = Err::<String, _>(Failure::permanent(Failure::NOT_FOUND, "gone"));
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(
            text,
            r#"{"Err":{"kind":"not-found","message":"gone","retryable":false}}"#
        );
        assert_eq!(
            serde_json::from_str::<Result<String, Failure>>(&text).unwrap(),
            new
        );
    }
}
