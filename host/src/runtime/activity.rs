//! Activities: guests that do real work. Not replayed, so they get the real
//! clocks and randomness, and HTTP to the allowed hosts; each call gets a
//! fresh instance, a memory cap and a wall-clock timeout. Their stdout and
//! stderr go to the host log.

use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::WasiCtx;

use wasmtime::AsContextMut;

use super::contract::ActivitiesPre;
use super::http::HttpPolicy;
use super::sandbox::{STDERR_CAPTURE_BYTES, Sandbox};
use super::stderr::StderrTail;
use super::{EPOCH_TICK, GuestError, Runtime, wire};

/// Fuel is not what limits an activity (the timeout is), but the engine
/// meters every store.
const UNMETERED: u64 = u64::MAX;

impl Runtime {
    /// Runs activity `name` once: from component `version` (the version
    /// of the orchestration that scheduled it) if that exports it, else
    /// from the current version. `Ok(Err(failure))` is the activity's own
    /// error; `Err` is a trap, a timeout or a missing activity.
    pub fn run_activity(
        &self,
        name: &str,
        version: Option<&str>,
        input: &str,
        context: &wire::ActivityContext,
        timeout: Duration,
    ) -> Result<Result<String, wire::Failure>, GuestError> {
        let catalog = self.catalog();
        let exports = |version: &str| {
            catalog
                .versions
                .get(version)
                .filter(|loaded| loaded.activity_names.iter().any(|known| known == name))
                .and_then(|loaded| loaded.activities.as_ref())
        };
        let component = version
            .and_then(exports)
            .or_else(|| catalog.current_activity(name).and_then(exports))
            .ok_or_else(|| GuestError::UnknownActivity(name.to_owned()))?;
        let stdout = StderrTail::logged(STDERR_CAPTURE_BYTES, format!("activity {name} stdout"));
        let stderr = StderrTail::logged(STDERR_CAPTURE_BYTES, format!("activity {name} stderr"));
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let ticks = (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        let mut sandbox = Sandbox::new(
            &self.engine,
            wasi,
            stderr.clone(),
            self.limits.memory_bytes,
            UNMETERED,
            ticks,
            HttpPolicy::Allow(Arc::clone(&self.http_hosts)),
        );
        let bindings = component
            .instantiate(&mut sandbox.store)
            .map_err(|error| sandbox.instantiation_failure(error))?;
        bindings
            .run(sandbox.store.as_context_mut(), name, input, context)
            .map_err(|error| sandbox.failure(error))
    }

    /// The activity names `component` exports.
    pub(super) fn activity_names_of(
        &self,
        component: &ActivitiesPre,
    ) -> Result<Vec<String>, GuestError> {
        let stderr = StderrTail::new(STDERR_CAPTURE_BYTES);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let mut sandbox = Sandbox::new(
            &self.engine,
            wasi,
            stderr,
            self.limits.memory_bytes,
            self.limits.fuel_per_step,
            super::NO_DEADLINE,
            HttpPolicy::DenyAll,
        );
        let bindings = component
            .instantiate(&mut sandbox.store)
            .map_err(|error| sandbox.instantiation_failure(error))?;
        bindings
            .names(sandbox.store.as_context_mut())
            .map_err(|error| sandbox.failure(error))
    }
}
