//! The SDK's error: a message, plus what a program needs to react to it
//! (its kind, and whether trying again can help).

use std::any::Any;
use std::fmt;

use crate::wire::Failure;

/// The kind of an error that says nothing more specific.
const DEFAULT_KIND: &str = "error";

/// The kind of a failure the host reports when an activity ran out of time.
const TIMEOUT_KIND: &str = "timeout";

/// A failure: a message for a person, a kind for a program, and whether
/// trying again can help.
///
/// Any `std::error::Error` converts into it, so `?` works on JSON and I/O
/// errors; [`Error::new`] makes one from a message. The kind is `"error"`
/// and the error is retryable unless said otherwise: the host records both
/// with the message (the WIT `failure` record), a retry policy gives up at
/// once on an error that is not retryable, and an orchestrator that awaits
/// a failed task can match on the kind.
///
/// ```
/// use reprise_sdk::Error;
///
/// fn check(amount: i64) -> Result<(), Error> {
///     if amount < 0 {
///         let message = format!("amount must not be negative, got {amount}");
///         return Err(Error::new(message).with_kind("validation").non_retryable());
///     }
///     Ok(())
/// }
/// let error = check(-1).unwrap_err();
/// assert_eq!(error.to_string(), "amount must not be negative, got -1");
/// assert_eq!(error.kind(), "validation");
/// assert!(!error.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    kind: String,
    retryable: bool,
}

impl Error {
    /// An error of kind `"error"`, retryable.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            kind: DEFAULT_KIND.to_owned(),
            retryable: true,
        }
    }

    /// The same error with another kind: a short stable word a program can
    /// match, such as `"validation"` or `"insufficient-funds"`.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Error {
        self.kind = kind.into();
        self
    }

    /// The same error, marked as one that trying again cannot help.
    pub fn non_retryable(mut self) -> Error {
        self.retryable = false;
        self
    }

    /// The message, as the host will record it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What kind of failure this is: `"error"` unless set, or the kind the
    /// host or a failed task reported (see the WIT `failure` record).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// False if trying again cannot help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// True for an activity that ran out of time (kind `"timeout"`).
    pub fn is_timeout(&self) -> bool {
        self.kind == TIMEOUT_KIND
    }

    /// The same kind and retryability with another message, e.g. the
    /// failure of a task with the task named in front.
    pub(crate) fn with_message(mut self, message: String) -> Error {
        self.message = message;
        self
    }

    /// The error a failure reported by the host stands for.
    pub(crate) fn from_failure(failure: Failure) -> Error {
        Error {
            message: failure.message,
            kind: failure.kind,
            retryable: failure.retryable,
        }
    }

    /// The failure the host records for this error.
    pub(crate) fn into_failure(self) -> Failure {
        Failure {
            kind: self.kind,
            message: self.message,
            retryable: self.retryable,
        }
    }

    /// The failure an orchestrator, activity or entity function's error
    /// stands for: an [`Error`] keeps its kind and retryability, any other
    /// error type is kind `"error"`, retryable, with its displayed message.
    pub(crate) fn failure_of<E: fmt::Display + 'static>(error: E) -> Failure {
        Error::of(error).into_failure()
    }

    /// `error` as an [`Error`], kept whole if it is one.
    pub(crate) fn of<E: fmt::Display + 'static>(error: E) -> Error {
        match (&error as &dyn Any).downcast_ref::<Error>() {
            Some(error) => error.clone(),
            None => Error::new(error.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Error::new(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_kind_error_and_retryable_by_default() {
        let error = Error::new("boom");
        assert_eq!((error.kind(), error.is_retryable()), ("error", true));
        assert!(!error.is_timeout());
    }

    #[test]
    fn an_sdk_error_keeps_its_kind_and_retryability_in_its_failure() {
        let failure = Error::failure_of(Error::new("no").with_kind("timeout").non_retryable());
        assert_eq!(
            failure,
            Failure {
                kind: "timeout".into(),
                message: "no".into(),
                retryable: false,
            }
        );
    }

    #[test]
    fn another_error_type_is_a_retryable_error_with_its_message() {
        let failure = Error::failure_of("plain text");
        assert_eq!(
            (
                failure.kind.as_str(),
                failure.message.as_str(),
                failure.retryable
            ),
            ("error", "plain text", true)
        );
    }
}
