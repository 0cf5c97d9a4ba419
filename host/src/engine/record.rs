//! What a committed episode tells the metrics and the traces. Taken from
//! the commit while it is planned ([`Shared::record_of`]: the store takes
//! the commit itself), and told once the store has committed it
//! ([`Shared::record`]), at each place an episode commits.

use std::time::SystemTime;

use opentelemetry::KeyValue;

use super::Shared;
use crate::metrics::{self, EpisodeEffect, EpisodeReport};
use crate::model::{Millis, RuntimeStatus};
use crate::store::EpisodeCommit;
use crate::traces::{self, InstanceTrace, Span, SpanOf};

/// A committed episode, for the metrics and the traces.
pub(super) struct EpisodeRecord {
    effect: EpisodeEffect,
    /// Its planning's, unless the host decided it alone.
    report: Option<EpisodeReport>,
    /// With tracing on, for a traced instance.
    trace: Option<EpisodeTrace>,
}

/// What an episode's spans say.
struct EpisodeTrace {
    trace: InstanceTrace,
    id: String,
    generation: u32,
    version: String,
    status: RuntimeStatus,
    /// The failure, for a failed instance's span.
    failure: Option<String>,
    created_at: Millis,
    updated_at: Millis,
    /// Timers the episode created: (task ID, due time).
    timers: Vec<(u64, Millis)>,
}

impl Shared {
    /// What `commit` (planned as `report` says) will tell once committed.
    pub(super) fn record_of(
        &self,
        commit: &EpisodeCommit,
        report: Option<EpisodeReport>,
    ) -> EpisodeRecord {
        let name = &commit.updated.name;
        let label = metrics::function_label(name, self.runtime.serves_orchestrator(name));
        let trace = self.traces.as_ref().and_then(|_| episode_trace(commit));
        EpisodeRecord {
            effect: EpisodeEffect::of(commit, label),
            report,
            trace,
        }
    }

    /// Tells the metrics and the traces of a committed episode.
    pub(super) fn record(&self, record: &EpisodeRecord) {
        self.metrics
            .episode_committed(&record.effect, record.report.as_ref());
        if let (Some(traces), Some(trace)) = (&self.traces, &record.trace) {
            send_spans(traces, &record.effect, record.report.as_ref(), trace);
        }
    }
}

fn episode_trace(commit: &EpisodeCommit) -> Option<EpisodeTrace> {
    let updated = &commit.updated;
    let trace = InstanceTrace::of(updated.trace.as_deref())?;
    Some(EpisodeTrace {
        trace,
        id: updated.id.clone(),
        generation: updated.generation,
        version: updated.version.clone().unwrap_or_default(),
        status: updated.status,
        failure: traces::failure(updated.status, updated.output.as_deref()),
        created_at: updated.created_at,
        updated_at: updated.updated_at,
        timers: commit.timers.clone(),
    })
}

/// The episode's span, one per timer it created, and the instance's own
/// span if it finished the instance.
fn send_spans(
    traces: &traces::Traces,
    effect: &EpisodeEffect,
    report: Option<&EpisodeReport>,
    episode: &EpisodeTrace,
) {
    let now = SystemTime::now();
    let orchestrator = effect.orchestrator.clone();
    let about = || {
        vec![
            KeyValue::new("reprise.instance_id", episode.id.clone()),
            KeyValue::new("reprise.orchestrator", orchestrator.clone()),
            KeyValue::new("reprise.generation", i64::from(episode.generation)),
        ]
    };
    let mut attributes = about();
    attributes.push(KeyValue::new("reprise.status", episode.status.as_str()));
    if let Some(report) = report {
        attributes.push(KeyValue::new(
            "reprise.execution",
            report.execution.as_str(),
        ));
    }
    let span = Span {
        name: "episode".into(),
        start: report.map_or(now, |report| report.began),
        end: now,
        attributes,
        error: None,
    };
    traces.send(&episode.trace, span, SpanOf::Step);
    for &(task_id, fire_at) in &episode.timers {
        let mut attributes = about();
        attributes.push(KeyValue::new("reprise.timer_id", task_id as i64));
        let span = Span {
            name: "timer".into(),
            start: now,
            end: traces::time_of(fire_at),
            attributes,
            error: None,
        };
        traces.send(&episode.trace, span, SpanOf::Step);
    }
    if effect.finished.is_some() {
        let mut attributes = about();
        attributes.push(KeyValue::new("reprise.status", episode.status.as_str()));
        attributes.push(KeyValue::new("reprise.version", episode.version.clone()));
        let span = Span {
            name: format!("orchestration {orchestrator}").into(),
            start: traces::time_of(episode.created_at),
            end: traces::time_of(episode.updated_at),
            attributes,
            error: episode.failure.clone(),
        };
        traces.send(&episode.trace, span, SpanOf::Instance);
    }
}
