//! Orchestrators: deterministic guests, one store per running generation.

use wasmtime::AsContextMut;
use wasmtime::component::ResourceAny;
use wasmtime_wasi::WasiCtx;

use super::contract::{Orchestrators, OrchestratorsPre};
use super::determinism::{EpisodeClock, SeededRandom};
use super::http::HttpPolicy;
use super::sandbox::{STDERR_CAPTURE_BYTES, Sandbox};
use super::stderr::StderrTail;
use super::{GuestError, NO_DEADLINE, Runtime, wire};
use crate::model::Millis;

impl Runtime {
    /// Constructs the guest's execution resource for one generation, on
    /// component `version` (`None`: the current version of `name`).
    pub fn start_execution(
        &self,
        name: &str,
        version: Option<&str>,
        instance_id: &str,
        input: &str,
        generation: u32,
    ) -> Result<GuestExecution, GuestError> {
        let catalog = self.catalog();
        let unknown = || GuestError::UnknownOrchestrator(name.to_owned());
        let component = catalog
            .pinned_or_current(version, catalog.current_orchestrator(name))?
            .filter(|loaded| loaded.orchestrator_names.iter().any(|known| known == name))
            .and_then(|loaded| loaded.orchestrators.as_ref())
            .ok_or_else(unknown)?;
        // What the guest writes to stderr (the SDK's replay-safe log) goes
        // to the host's log, inside the episode's span.
        let stderr = StderrTail::logged(STDERR_CAPTURE_BYTES, format!("orchestrator {name}"));
        let (mut sandbox, bindings, clock) =
            self.instantiate_orchestrator(component, instance_id, generation, stderr)?;
        let handle = bindings
            .construct(sandbox.store.as_context_mut(), name, instance_id, input)
            .map_err(|error| sandbox.failure(error))?;
        Ok(GuestExecution {
            sandbox,
            bindings,
            clock,
            handle,
        })
    }

    /// The orchestrator names `component` exports.
    pub(super) fn orchestrator_names_of(
        &self,
        component: &OrchestratorsPre,
    ) -> Result<Vec<String>, GuestError> {
        let stderr = StderrTail::new(STDERR_CAPTURE_BYTES);
        let (mut sandbox, bindings, _) =
            self.instantiate_orchestrator(component, "load", 0, stderr)?;
        bindings
            .names(sandbox.store.as_context_mut())
            .map_err(|error| sandbox.failure(error))
    }

    fn instantiate_orchestrator(
        &self,
        component: &OrchestratorsPre,
        instance_id: &str,
        generation: u32,
        stderr: StderrTail,
    ) -> Result<(Sandbox, Orchestrators, EpisodeClock), GuestError> {
        let clock = EpisodeClock::default();
        let wasi = WasiCtx::builder()
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(SeededRandom::new(instance_id, generation))
            .insecure_random(SeededRandom::new(instance_id, generation ^ 0x8000_0000))
            .insecure_random_seed(0)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        // Orchestrators are bounded by fuel, which is deterministic, not by
        // wall time, which is not.
        let mut sandbox = Sandbox::new(
            &self.engine,
            wasi,
            stderr,
            self.limits.memory_bytes,
            self.limits.fuel_per_step,
            NO_DEADLINE,
            HttpPolicy::DenyAll,
        );
        let bindings = component
            .instantiate(&mut sandbox.store)
            .map_err(|error| sandbox.instantiation_failure(error))?;
        Ok((sandbox, bindings, clock))
    }
}

/// One generation of one instance, alive inside its own wasmtime store.
pub struct GuestExecution {
    sandbox: Sandbox,
    bindings: Orchestrators,
    clock: EpisodeClock,
    handle: ResourceAny,
}

impl GuestExecution {
    /// Feeds a new episode's events; `episode_time` is what the guest's
    /// clocks read.
    pub fn step(
        &mut self,
        episode_time: Millis,
        events: &[wire::HistoryEvent],
    ) -> Result<Vec<wire::Action>, GuestError> {
        self.step_within(episode_time, events, None)
    }

    /// Feeds a recorded episode's events again, to rebuild the guest's
    /// state; the guest is told it replays.
    pub fn replay_step(
        &mut self,
        episode_time: Millis,
        events: &[wire::HistoryEvent],
    ) -> Result<Vec<wire::Action>, GuestError> {
        self.run_step(episode_time, events, None, Replaying::Yes)
    }

    /// Bytes of linear memory the guest has grown to (not all resident).
    pub fn memory_bytes(&self) -> usize {
        self.sandbox.memory_bytes()
    }

    /// [`step`](Self::step) with at most `fuel` (if less than the full
    /// budget). A step that needs more fails with
    /// [`GuestError::OverBudget`], not as the guest's fault, and leaves the
    /// execution unusable.
    pub fn step_within(
        &mut self,
        episode_time: Millis,
        events: &[wire::HistoryEvent],
        fuel: Option<u64>,
    ) -> Result<Vec<wire::Action>, GuestError> {
        self.run_step(episode_time, events, fuel, Replaying::No)
    }

    fn run_step(
        &mut self,
        episode_time: Millis,
        events: &[wire::HistoryEvent],
        fuel: Option<u64>,
        replaying: Replaying,
    ) -> Result<Vec<wire::Action>, GuestError> {
        self.clock.set(episode_time);
        let given = self.sandbox.refuel(fuel);
        let replaying = replaying == Replaying::Yes;
        // Out of less than the full budget is not the guest's failure.
        self.bindings
            .step(
                self.sandbox.store.as_context_mut(),
                self.handle,
                events,
                replaying,
            )
            .map_err(|error| match self.sandbox.failure(error) {
                GuestError::OutOfFuel(_) if given < self.sandbox.fuel_budget() => {
                    GuestError::OverBudget(given)
                }
                other => other,
            })
    }
}

/// Whether a step feeds recorded events again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaying {
    Yes,
    No,
}
