//! Would a recorded generation replay on another build? `reprise replay`
//! asks this before a deploy: it replays histories fetched from a host on a
//! new component, locally, exactly as an episode replays them (one recorded
//! episode per step, each checked against the recorded actions).

use crate::model::HistoryEntry;
use crate::runtime::{GuestError, Runtime};

use super::episode::{recorded_episodes, replay};

/// One generation of one instance, as a host recorded it.
#[derive(Debug, Clone)]
pub struct RecordedGeneration {
    pub instance_id: String,
    /// The orchestrator's name.
    pub name: String,
    /// With the instance ID, seeds the orchestrator's random source.
    pub generation: u32,
    /// The generation's input (JSON text).
    pub input: String,
    /// Every entry of the generation, episode markers included.
    pub history: Vec<HistoryEntry>,
}

/// The answer for one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The build takes every recorded action again.
    Replays { episodes: usize },
    /// The first thing that would go wrong, for a person.
    Breaks(String),
}

/// Replays `recorded` on component `version`, which `runtime` has loaded.
/// `Err` is a failure to check (the host's, not the build's).
pub fn check_replay(
    runtime: &Runtime,
    version: &str,
    recorded: &RecordedGeneration,
) -> anyhow::Result<Verdict> {
    let started = runtime.start_execution(
        &recorded.name,
        Some(version),
        &recorded.instance_id,
        &recorded.input,
        recorded.generation,
    );
    let outcome = started.and_then(|mut execution| {
        replay(
            &mut execution,
            &recorded.instance_id,
            recorded.generation,
            &recorded.history,
        )
    });
    match outcome {
        Ok(Ok(())) => Ok(Verdict::Replays {
            episodes: recorded_episodes(&recorded.history).len(),
        }),
        Ok(Err(mismatch)) => Ok(Verdict::Breaks(mismatch)),
        Err(GuestError::UnknownOrchestrator(name)) => Ok(Verdict::Breaks(format!(
            "this build does not export the orchestrator '{name}'"
        ))),
        Err(GuestError::Host(error)) => Err(error.context("cannot run the build")),
        Err(error) => Ok(Verdict::Breaks(format!(
            "the orchestrator {error} while replaying"
        ))),
    }
}
