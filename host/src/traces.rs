//! OpenTelemetry traces, exported over OTLP (HTTP, protobuf) when the host
//! is given a collector (`--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`).
//! Off by default, and then nothing here runs: no trace context is made,
//! stored or read.
//!
//! An instance has one span for its whole life (not one per replay),
//! `orchestration NAME`, from its creation to its end, exported by the host
//! that commits its last episode. Its trace and span IDs are made at the
//! start (under the start request's W3C `traceparent`, if it sent one) and
//! kept in the instance's row ([`InstanceTrace`]), so every host, after any
//! restart, puts the instance's other spans under it: one per committed
//! episode, per activity run, per durable timer (from its creation to its
//! due time); a sub-orchestration's instance span is a child of its
//! parent's, in the same trace.
//!
//! Spans are built whole (`SpanData`, their times known) and handed to a
//! background task that exports them in batches. A full queue drops spans
//! (logged): tracing never slows or stops the work it describes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::mpsc;

use crate::model::{Millis, RuntimeStatus};

/// Spans waiting for export, at most; beyond it they are dropped.
const QUEUE: usize = 8192;
/// Spans in one export request, at most.
const BATCH: usize = 512;

/// An instance's place in a trace: the trace, the instance's own span,
/// and that span's parent (the caller's span, or the parent instance's;
/// invalid for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTrace {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: SpanId,
}

impl InstanceTrace {
    /// A started instance's: in the caller's trace if `traceparent` is a
    /// valid W3C header (its span the instance span's parent), else in a
    /// new trace.
    pub fn start(traceparent: Option<&str>) -> InstanceTrace {
        let (trace_id, parent) = traceparent
            .and_then(parse_traceparent)
            .unwrap_or_else(|| (new_trace_id(), SpanId::INVALID));
        InstanceTrace {
            trace_id,
            span_id: new_span_id(),
            parent,
        }
    }

    /// A sub-orchestration's: in this instance's trace, under its span.
    pub fn child(&self) -> InstanceTrace {
        InstanceTrace {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            parent: self.span_id,
        }
    }

    /// The form kept in the instance's row: `TRACE-SPAN-PARENT` in hex.
    pub fn to_text(self) -> String {
        format!("{}-{}-{}", self.trace_id, self.span_id, self.parent)
    }

    /// Reads [`Self::to_text`]'s form; `None` for anything else.
    pub fn parse(text: &str) -> Option<InstanceTrace> {
        let mut parts = text.split('-');
        let trace_id = TraceId::from_hex(parts.next()?).ok()?;
        let span_id = SpanId::from_hex(parts.next()?).ok()?;
        let parent = SpanId::from_hex(parts.next()?).ok()?;
        if parts.next().is_some() || trace_id == TraceId::INVALID {
            return None;
        }
        Some(InstanceTrace {
            trace_id,
            span_id,
            parent,
        })
    }

    /// The trace of a row's `trace` column, if it is traced.
    pub fn of(stored: Option<&str>) -> Option<InstanceTrace> {
        stored.and_then(InstanceTrace::parse)
    }
}

/// A random trace ID (a version 4 UUID's bytes: 122 random bits).
fn new_trace_id() -> TraceId {
    TraceId::from_bytes(*uuid::Uuid::new_v4().as_bytes())
}

/// A random span ID that is valid (not all zeroes).
fn new_span_id() -> SpanId {
    loop {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let span_id = SpanId::from_bytes(bytes[..8].try_into().expect("8 of 16 bytes"));
        if span_id != SpanId::INVALID {
            return span_id;
        }
    }
}

/// The trace and parent span of a W3C `traceparent` header, if it is
/// valid (read by the SDK's W3C propagator).
fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId)> {
    let carrier = HashMap::from([("traceparent".to_owned(), header.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let caller = context.span().span_context().clone();
    caller
        .is_valid()
        .then(|| (caller.trace_id(), caller.span_id()))
}

/// One span to export, under `trace`'s instance span (or, for the
/// instance span itself, under its parent).
pub struct Span {
    pub name: Cow<'static, str>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// An error's description, for a span that failed.
    pub error: Option<String>,
}

/// The exporter's queue; cheap to clone.
#[derive(Clone)]
pub struct Traces {
    queue: mpsc::Sender<SpanData>,
}

impl Traces {
    /// Starts exporting to the OTLP/HTTP collector at `endpoint` (its base
    /// URL; spans go to `/v1/traces`). Call on the runtime.
    pub fn start(endpoint: &str) -> anyhow::Result<Traces> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&url)
            .with_timeout(Duration::from_secs(10))
            .build()
            .with_context(|| format!("cannot export traces to {url}"))?;
        exporter.set_resource(&Resource::builder().with_service_name("reprise").build());
        let (queue, spans) = mpsc::channel(QUEUE);
        tokio::spawn(export(exporter, spans));
        Ok(Traces { queue })
    }

    /// Queues `span` in `trace`: as the instance span if `instance`, else
    /// as a new span under it.
    pub fn send(&self, trace: &InstanceTrace, span: Span, kind: SpanOf) {
        let (span_id, parent) = match kind {
            SpanOf::Instance => (trace.span_id, trace.parent),
            SpanOf::Step => (new_span_id(), trace.span_id),
        };
        let data = SpanData {
            span_context: SpanContext::new(
                trace.trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: span.name,
            start_time: span.start,
            end_time: span.end.max(span.start),
            attributes: span.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match span.error {
                Some(description) => Status::error(description),
                None => Status::Ok,
            },
            instrumentation_scope: InstrumentationScope::builder("reprise").build(),
        };
        if self.queue.try_send(data).is_err() {
            tracing::warn!("the trace export queue is full; a span was dropped");
        }
    }
}

/// Which span of an instance's trace [`Traces::send`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanOf {
    /// The instance's own span.
    Instance,
    /// A step of its life, under the instance span.
    Step,
}

/// Exports queued spans in batches until the queue closes.
async fn export(exporter: opentelemetry_otlp::SpanExporter, mut spans: mpsc::Receiver<SpanData>) {
    let mut batch = Vec::with_capacity(BATCH);
    while spans.recv_many(&mut batch, BATCH).await > 0 {
        let count = batch.len();
        if let Err(error) = exporter.export(std::mem::take(&mut batch)).await {
            tracing::warn!("could not export {count} spans: {error}");
        }
    }
}

/// `millis` since the epoch as a time.
pub fn time_of(millis: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// The status's description for an instance span: its output if it
/// failed.
pub fn failure(status: RuntimeStatus, output: Option<&str>) -> Option<String> {
    (status == RuntimeStatus::Failed).then(|| output.unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_followed_and_anything_else_starts_a_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = InstanceTrace::start(Some(header));
        assert_eq!(
            trace.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace.parent.to_string(), "00f067aa0ba902b7");
        assert_ne!(trace.span_id, SpanId::INVALID);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let trace = InstanceTrace::start(Some(bad));
            assert_eq!(trace.parent, SpanId::INVALID, "{bad}");
            assert_ne!(
                trace.trace_id.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_stored_form_reads_back_and_a_child_is_under_its_parent() {
        let trace = InstanceTrace::start(None);
        assert_eq!(InstanceTrace::parse(&trace.to_text()), Some(trace));
        let child = trace.child();
        assert_eq!(
            (child.trace_id, child.parent),
            (trace.trace_id, trace.span_id)
        );
        assert_eq!(InstanceTrace::parse("nonsense"), None);
    }
}
