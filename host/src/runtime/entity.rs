//! Entities: small state objects whose operations a guest applies one at
//! a time. Not replayed (their state is stored after each batch, never
//! rebuilt from a history), so they get real clocks; like orchestrators
//! they have no network, and each operation has the fuel of one
//! orchestrator step.

use wasmtime::AsContextMut;
use wasmtime_wasi::WasiCtx;

use super::contract::EntitiesPre;
use super::http::HttpPolicy;
use super::sandbox::{STDERR_CAPTURE_BYTES, Sandbox};
use super::stderr::StderrTail;
use super::{GuestError, NO_DEADLINE, Runtime, wire};

/// What a batch of operations came to.
#[derive(Debug)]
pub struct EntityBatch {
    /// One per operation applied, in order.
    pub outcomes: Vec<wire::Outcome>,
    /// Set if the guest failed (trapped, ran out of fuel or memory) on the
    /// operation after the last outcome: it and the operations after it
    /// were not applied, and the guest instance is gone.
    pub fault: Option<GuestError>,
}

impl Runtime {
    /// Applies `operations` in order to entity `id` (whose function is
    /// `id.name`) in state `state`, in one guest instance of component
    /// `version` (`None`: the current version of the entity): each one to
    /// the state the last one that succeeded left (a failed operation
    /// changes nothing, as the contract says). `bounded` sees each
    /// outcome first and may fail it (the host's limits): then it changes
    /// nothing either.
    pub fn run_entity(
        &self,
        version: Option<&str>,
        id: &wire::EntityId,
        state: Option<String>,
        operations: &[wire::Operation],
        bounded: impl Fn(wire::Outcome) -> wire::Outcome,
    ) -> Result<EntityBatch, GuestError> {
        let catalog = self.catalog();
        let component = catalog
            .pinned_or_current(version, catalog.current_entity(&id.name))?
            .filter(|loaded| loaded.exports_entity(&id.name))
            .and_then(|loaded| loaded.entities.as_ref())
            .ok_or_else(|| GuestError::UnknownEntity(id.name.clone()))?;
        let stderr = StderrTail::logged(STDERR_CAPTURE_BYTES, format!("entity {}", id.name));
        let mut sandbox = self.entity_sandbox(stderr);
        let entities = component
            .instantiate(&mut sandbox.store)
            .map_err(|error| sandbox.instantiation_failure(error))?;
        let mut state = state;
        let mut outcomes = Vec::with_capacity(operations.len());
        for operation in operations {
            sandbox.refuel(None);
            let outcome = match entities.run(
                sandbox.store.as_context_mut(),
                id,
                state.as_deref(),
                operation,
            ) {
                Ok(outcome) => bounded(outcome),
                Err(error) => {
                    let fault = Some(sandbox.failure(error));
                    return Ok(EntityBatch { outcomes, fault });
                }
            };
            if outcome.output.is_ok() {
                state.clone_from(&outcome.state);
            }
            outcomes.push(outcome);
        }
        Ok(EntityBatch {
            outcomes,
            fault: None,
        })
    }

    /// The entity names `component` exports.
    pub(super) fn entity_names_of(
        &self,
        component: &EntitiesPre,
    ) -> Result<Vec<String>, GuestError> {
        let mut sandbox = self.entity_sandbox(StderrTail::new(STDERR_CAPTURE_BYTES));
        let entities = component
            .instantiate(&mut sandbox.store)
            .map_err(|error| sandbox.instantiation_failure(error))?;
        entities
            .names(sandbox.store.as_context_mut())
            .map_err(|error| sandbox.failure(error))
    }

    fn entity_sandbox(&self, stderr: StderrTail) -> Sandbox {
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox::new(
            &self.engine,
            wasi,
            stderr,
            self.limits.memory_bytes,
            self.limits.fuel_per_step,
            NO_DEADLINE,
            HttpPolicy::DenyAll,
        )
    }
}
