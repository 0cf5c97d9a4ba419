//! The WIT contract, in every version the host speaks.
//!
//! A component is checked against the version of `reprise:orchestration`
//! it was built with, and a published version never changes (wasmtime
//! compares variants case by case), so the host keeps bindings for each
//! version: `current` from `wit/orchestration.wit`, older ones from
//! `wit/archive/`. The rest of the host speaks only the current version's
//! types ([`wire`]); a component built against an older version is spoken
//! to through its own bindings, its values converted at this boundary
//! (`v0_1.rs`). To add a version: archive the current text, bind it here
//! beside the others, and write its conversions.

mod v0_1;

use wasmtime::component::{InstancePre, ResourceAny};
use wasmtime::{AsContextMut, StoreContextMut};

use super::sandbox::GuestState;

/// Bindings of the current version, 0.2.0.
pub(super) mod current {
    pub(in crate::runtime) mod orchestrations {
        wasmtime::component::bindgen!({
            path: "../wit/orchestration.wit",
            world: "orchestrations",
        });
    }

    pub(in crate::runtime) mod activities {
        wasmtime::component::bindgen!({
            path: "../wit/orchestration.wit",
            world: "activities",
            with: {
                "reprise:orchestration/types": super::orchestrations::reprise::orchestration::types,
            },
        });
    }

    pub(in crate::runtime) mod entities {
        wasmtime::component::bindgen!({
            path: "../wit/orchestration.wit",
            world: "entities",
            with: {
                "reprise:orchestration/types": super::orchestrations::reprise::orchestration::types,
            },
        });
    }
}

/// Bindings of 0.1.0: orchestrators and activities (it has no entities).
pub(super) mod archived_0_1 {
    pub(in crate::runtime) mod orchestrations {
        wasmtime::component::bindgen!({
            path: "../wit/archive/0.1.0/orchestration.wit",
            world: "orchestrations",
        });
    }

    pub(in crate::runtime) mod activities {
        wasmtime::component::bindgen!({
            path: "../wit/archive/0.1.0/orchestration.wit",
            world: "activities",
        });
    }
}

/// The types exchanged with guests, in the current version.
pub mod wire {
    pub use super::current::activities::exports::reprise::orchestration::activity::ActivityContext;
    pub use super::current::entities::exports::reprise::orchestration::entity::{
        EntityAction, Operation, Outcome,
    };
    pub use super::current::orchestrations::reprise::orchestration::types::{
        Action, CallEntity, ContinueAsNew, CreateTimer, EntityId, EventRaised, ExecutionStarted,
        Failure, HistoryEvent, LockEntities, ScheduleActivity, SendEvent, SignalEntity,
        StartOrchestration, StartSubOrchestration, TaskCompleted, TaskFailed,
    };
}

impl From<crate::model::Failure> for wire::Failure {
    fn from(failure: crate::model::Failure) -> wire::Failure {
        wire::Failure {
            kind: failure.kind,
            message: failure.message,
            retryable: failure.retryable,
        }
    }
}

impl From<wire::Failure> for crate::model::Failure {
    fn from(failure: wire::Failure) -> crate::model::Failure {
        crate::model::Failure {
            kind: failure.kind,
            message: failure.message,
            retryable: failure.retryable,
        }
    }
}

/// The package versions the host runs, newest first.
pub const VERSIONS: [&str; 2] = ["0.2.0", "0.1.0"];

/// A component's orchestrators, ready to instantiate, in the version of
/// the contract it was built against.
#[derive(Clone)]
pub(super) enum OrchestratorsPre {
    Current(current::orchestrations::OrchestrationsPre<GuestState>),
    V0_1(archived_0_1::orchestrations::OrchestrationsPre<GuestState>),
}

impl OrchestratorsPre {
    /// The orchestrator export of the newest version the component has.
    pub(super) fn new(pre: InstancePre<GuestState>) -> anyhow::Result<OrchestratorsPre> {
        if let Ok(current) = current::orchestrations::OrchestrationsPre::new(pre.clone()) {
            return Ok(OrchestratorsPre::Current(current));
        }
        archived_0_1::orchestrations::OrchestrationsPre::new(pre)
            .map(OrchestratorsPre::V0_1)
            .map_err(|_| no_export("orchestrator"))
    }

    pub(super) fn instantiate(
        &self,
        store: impl AsContextMut<Data = GuestState>,
    ) -> wasmtime::Result<Orchestrators> {
        Ok(match self {
            OrchestratorsPre::Current(pre) => Orchestrators::Current(pre.instantiate(store)?),
            OrchestratorsPre::V0_1(pre) => Orchestrators::V0_1(pre.instantiate(store)?),
        })
    }

    /// The contract version the component was built against.
    pub(super) fn version(&self) -> &'static str {
        match self {
            OrchestratorsPre::Current(_) => VERSIONS[0],
            OrchestratorsPre::V0_1(_) => VERSIONS[1],
        }
    }
}

/// One instance of a component's orchestrators.
pub(super) enum Orchestrators {
    Current(current::orchestrations::Orchestrations),
    V0_1(archived_0_1::orchestrations::Orchestrations),
}

impl Orchestrators {
    pub(super) fn names(
        &self,
        store: StoreContextMut<'_, GuestState>,
    ) -> wasmtime::Result<Vec<String>> {
        match self {
            Orchestrators::Current(guest) => {
                guest.reprise_orchestration_orchestrator().call_names(store)
            }
            Orchestrators::V0_1(guest) => {
                guest.reprise_orchestration_orchestrator().call_names(store)
            }
        }
    }

    /// Constructs the `execution` resource of one generation.
    pub(super) fn construct(
        &self,
        store: StoreContextMut<'_, GuestState>,
        name: &str,
        instance_id: &str,
        input: &str,
    ) -> wasmtime::Result<ResourceAny> {
        let input = input.to_owned();
        match self {
            Orchestrators::Current(guest) => guest
                .reprise_orchestration_orchestrator()
                .execution()
                .call_constructor(store, name, instance_id, &input),
            Orchestrators::V0_1(guest) => guest
                .reprise_orchestration_orchestrator()
                .execution()
                .call_constructor(store, name, instance_id, &input),
        }
    }

    /// One `step` of `execution`; `replaying` is not said to 0.1.0 guests.
    pub(super) fn step(
        &self,
        store: StoreContextMut<'_, GuestState>,
        execution: ResourceAny,
        events: &[wire::HistoryEvent],
        replaying: bool,
    ) -> wasmtime::Result<Vec<wire::Action>> {
        match self {
            Orchestrators::Current(guest) => guest
                .reprise_orchestration_orchestrator()
                .execution()
                .call_step(store, execution, events, replaying),
            Orchestrators::V0_1(guest) => {
                let events = v0_1::events(events);
                let actions = guest
                    .reprise_orchestration_orchestrator()
                    .execution()
                    .call_step(store, execution, &events)?;
                Ok(actions.into_iter().map(v0_1::action).collect())
            }
        }
    }
}

/// A component's activities, ready to instantiate, in the version of the
/// contract it was built against.
#[derive(Clone)]
pub(super) enum ActivitiesPre {
    Current(current::activities::ActivitiesPre<GuestState>),
    V0_1(archived_0_1::activities::ActivitiesPre<GuestState>),
}

impl ActivitiesPre {
    /// The activity export of the newest version the component has.
    pub(super) fn new(pre: InstancePre<GuestState>) -> anyhow::Result<ActivitiesPre> {
        if let Ok(current) = current::activities::ActivitiesPre::new(pre.clone()) {
            return Ok(ActivitiesPre::Current(current));
        }
        archived_0_1::activities::ActivitiesPre::new(pre)
            .map(ActivitiesPre::V0_1)
            .map_err(|_| no_export("activity"))
    }

    /// The contract version the component was built against.
    pub(super) fn version(&self) -> &'static str {
        match self {
            ActivitiesPre::Current(_) => VERSIONS[0],
            ActivitiesPre::V0_1(_) => VERSIONS[1],
        }
    }

    pub(super) fn instantiate(
        &self,
        store: impl AsContextMut<Data = GuestState>,
    ) -> wasmtime::Result<Activities> {
        Ok(match self {
            ActivitiesPre::Current(pre) => Activities::Current(pre.instantiate(store)?),
            ActivitiesPre::V0_1(pre) => Activities::V0_1(pre.instantiate(store)?),
        })
    }
}

/// One instance of a component's activities.
pub(super) enum Activities {
    Current(current::activities::Activities),
    V0_1(archived_0_1::activities::Activities),
}

impl Activities {
    pub(super) fn names(
        &self,
        store: StoreContextMut<'_, GuestState>,
    ) -> wasmtime::Result<Vec<String>> {
        match self {
            Activities::Current(guest) => guest.reprise_orchestration_activity().call_names(store),
            Activities::V0_1(guest) => guest.reprise_orchestration_activity().call_names(store),
        }
    }

    /// Runs activity `name`; `context` is not given to 0.1.0 guests.
    pub(super) fn run(
        &self,
        store: StoreContextMut<'_, GuestState>,
        name: &str,
        input: &str,
        context: &wire::ActivityContext,
    ) -> wasmtime::Result<Result<String, wire::Failure>> {
        let input = input.to_owned();
        match self {
            Activities::Current(guest) => guest
                .reprise_orchestration_activity()
                .call_run(store, name, &input, context),
            Activities::V0_1(guest) => Ok(guest
                .reprise_orchestration_activity()
                .call_run(store, name, &input)?
                .map_err(v0_1::failure)),
        }
    }
}

/// A component's entities, ready to instantiate (entities came with
/// 0.2.0: there is no older version to speak).
#[derive(Clone)]
pub(super) struct EntitiesPre(current::entities::EntitiesPre<GuestState>);

impl EntitiesPre {
    pub(super) fn new(pre: InstancePre<GuestState>) -> anyhow::Result<EntitiesPre> {
        current::entities::EntitiesPre::new(pre)
            .map(EntitiesPre)
            .map_err(|_| no_export_of("entity", &VERSIONS[..1]))
    }

    pub(super) fn instantiate(
        &self,
        store: impl AsContextMut<Data = GuestState>,
    ) -> wasmtime::Result<Entities> {
        Ok(Entities(self.0.instantiate(store)?))
    }
}

/// One instance of a component's entities.
pub(super) struct Entities(current::entities::Entities);

impl Entities {
    pub(super) fn names(
        &self,
        store: StoreContextMut<'_, GuestState>,
    ) -> wasmtime::Result<Vec<String>> {
        self.0.reprise_orchestration_entity().call_names(store)
    }

    /// Applies `operation` to entity `id` in state `state`.
    pub(super) fn run(
        &self,
        store: StoreContextMut<'_, GuestState>,
        id: &wire::EntityId,
        state: Option<&str>,
        operation: &wire::Operation,
    ) -> wasmtime::Result<wire::Outcome> {
        let state = state.map(str::to_owned);
        self.0
            .reprise_orchestration_entity()
            .call_run(store, id, state.as_ref(), operation)
    }
}

/// Why a component was not loaded as `interface`s: it has none of the
/// versions this host runs.
fn no_export(interface: &str) -> anyhow::Error {
    no_export_of(interface, &VERSIONS)
}

/// Why a component was not loaded as `interface`s: it has none of
/// `versions`.
fn no_export_of(interface: &str, versions: &[&str]) -> anyhow::Error {
    let names: Vec<String> = versions
        .iter()
        .map(|version| format!("reprise:orchestration/{interface}@{version}"))
        .collect();
    anyhow::anyhow!(
        "the component exports none of {} (build it with reprise-sdk)",
        names.join(", ")
    )
}
