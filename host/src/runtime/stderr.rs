//! A guest's output stream: the last few KiB kept for error reports, never
//! full, and (for activities) each line logged as it is written.
//!
//! A bounded pipe would start refusing writes once full, and a guest whose
//! `eprintln!` fails panics. Since every episode replays its generation from
//! the start, the output of a long generation adds up; so keep the tail.
//! Orchestrator output is not logged: replays would repeat it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Clone)]
pub(super) struct StderrTail {
    tail: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
    /// If set, complete lines go to the host log, labelled with this.
    log: Option<Arc<LineLog>>,
}

/// Writes complete lines to the host log as they arrive.
struct LineLog {
    label: String,
    partial: Mutex<Vec<u8>>,
}

impl StderrTail {
    pub(super) fn new(capacity: usize) -> StderrTail {
        StderrTail {
            tail: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
            log: None,
        }
    }

    /// Also logs each line, e.g. `label` = "activity SayHello stdout".
    pub(super) fn logged(capacity: usize, label: String) -> StderrTail {
        StderrTail {
            log: Some(Arc::new(LineLog {
                label,
                partial: Mutex::new(Vec::new()),
            })),
            ..StderrTail::new(capacity)
        }
    }

    /// What the guest wrote last, lossily decoded.
    pub(super) fn contents(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn append(&self, bytes: &[u8]) {
        if let Some(log) = &self.log {
            let mut partial = log.partial.lock().unwrap_or_else(|e| e.into_inner());
            partial.extend_from_slice(bytes);
            while let Some(end) = partial.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]);
                tracing::info!("{}: {}", log.label, line.trim_end_matches('\r'));
            }
        }
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (tail.len() + bytes.len()).saturating_sub(self.capacity);
        tail.drain(..overflow);
        tail.extend(bytes);
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_written() {
        let tail = StderrTail::new(8);
        tail.append(b"hello ");
        tail.append(b"world");
        assert_eq!(tail.contents(), "lo world");
        tail.append(b"0123456789");
        assert_eq!(tail.contents(), "23456789");
    }
}
