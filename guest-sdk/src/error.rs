use std::fmt;

/// An orchestrator failure: a message the host records as the instance's output.
///
/// Any `std::error::Error` converts into it, so `?` works on JSON and I/O
/// errors; [`Error::new`] makes one from a message.
///
/// ```
/// use reprise_sdk::Error;
///
/// fn check(amount: i64) -> Result<(), Error> {
///     if amount < 0 {
///         return Err(Error::new(format!("amount must not be negative, got {amount}")));
///     }
///     Ok(())
/// }
/// assert_eq!(check(-1).unwrap_err().to_string(), "amount must not be negative, got -1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// The message, as the host will record it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Error {
            message: error.to_string(),
        }
    }
}
