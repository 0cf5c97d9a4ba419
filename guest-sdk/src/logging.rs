//! Replay-safe logging for orchestrators.
//!
//! An orchestrator runs again each time the host replays its history, so a
//! plain `eprintln!` repeats its line at every replay. [`OrchestrationContext::log`]
//! writes only while the execution is not replaying: each line once, when
//! the episode that takes the decision first runs. Lines go to stderr, which
//! the host logs.

use std::fmt;
use std::rc::Rc;

use crate::OrchestrationContext;

/// How much a log line matters; written at the start of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an execution's log lines go: stderr, or a test's record.
#[derive(Clone)]
pub(crate) struct LogSink(Rc<dyn Fn(&str)>);

impl LogSink {
    pub(crate) fn new(write: impl Fn(&str) + 'static) -> LogSink {
        LogSink(Rc::new(write))
    }

    fn write(&self, line: &str) {
        (self.0)(line);
    }
}

impl Default for LogSink {
    fn default() -> Self {
        LogSink::new(|line| eprintln!("{line}"))
    }
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink")
    }
}

impl OrchestrationContext {
    /// Logs `message` at `level`, once: nothing is written while the host
    /// replays (see [`is_replaying`](Self::is_replaying)). Each line of the
    /// message is written to stderr as `LEVEL message`, and the host logs it
    /// with the instance it came from.
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use reprise_sdk::LogLevel;
    /// let receipt: String = ctx.call_activity("ChargeCard", 42).await?;
    /// ctx.log(LogLevel::Info, format_args!("charged, receipt {receipt}"));
    /// # Ok(()) }
    /// ```
    pub fn log(&self, level: LogLevel, message: impl fmt::Display) {
        let state = self.state().borrow();
        if state.replaying {
            return;
        }
        let sink = state.log_sink.clone();
        drop(state);
        let message = message.to_string();
        if message.is_empty() {
            sink.write(level.as_str());
        }
        for line in message.lines() {
            sink.write(&format!("{level} {line}"));
        }
    }
}
