//! The tests' own HTTP client's log: what hyper-util's connection pool did
//! (connecting, reusing, dropping connections), at trace level, the last
//! lines kept in memory. A test prints the lines about its host's port
//! when a request hangs: a hang the host never saw is the client's.
//!
//! One subscriber for the whole test process (the first test to ask sets
//! it), so the lines of every test's clients are kept: filter by port.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Lines kept at most; older ones are dropped.
const KEPT: usize = 50_000;

/// What is logged: the pool's trace, and what a test says with the
/// `client` target.
const FILTER: &str = "hyper_util=trace,client=debug";

#[derive(Clone, Default)]
pub struct ClientLog {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl ClientLog {
    /// The process's client log, recording from the first call on (or
    /// `None` if another subscriber was set first).
    pub fn recording() -> Option<&'static ClientLog> {
        static LOG: OnceLock<Option<ClientLog>> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = ClientLog::default();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new(FILTER))
                .with_ansi(false)
                .with_thread_ids(true)
                .with_writer(log.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .ok()
                .map(|()| log)
        })
        .as_ref()
    }

    /// The kept lines that mention `port`.
    pub fn about_port(&self, port: u16) -> Vec<String> {
        let port = port.to_string();
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|line| line.contains(&port))
            .cloned()
            .collect()
    }
}

impl Write for ClientLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for line in String::from_utf8_lossy(bytes).lines() {
            if lines.len() == KEPT {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ClientLog {
    type Writer = ClientLog;

    fn make_writer(&'a self) -> ClientLog {
        self.clone()
    }
}
