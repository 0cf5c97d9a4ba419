//! Orchestrator components on wasmtime: loading, sandboxing, stepping.
//!
//! This is the only module that knows wasmtime. Read [`Runtime::load_functions_dir`]
//! for how the functions folder becomes a table of orchestrators, then
//! [`GuestExecution`] for one running generation.
//!
//! Sandbox: an orchestrator gets WASI with no filesystem, network,
//! environment or arguments; its clocks read the episode's recorded time and
//! its random source is seeded from instance ID and generation
//! ([`determinism`]). NaN bit patterns are canonicalized, each step has a fuel
//! budget and each instance a memory limit, so a runaway guest fails its own
//! instance and nothing else.

mod determinism;
mod stderr;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use self::determinism::{EpisodeClock, SeededRandom};
use self::stderr::StderrTail;
use crate::model::Millis;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "orchestrations",
    });
}

use bindings::{Orchestrations, OrchestrationsPre};

/// The types exchanged with guests, as generated from `wit/`.
pub mod wire {
    pub use super::bindings::reprise::orchestration::types::{
        Action, ContinueAsNew, CreateTimer, EventRaised, ExecutionStarted, HistoryEvent,
    };
}

/// Resource limits for guests.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// Fuel (roughly, wasm instructions) one `step` call may burn.
    pub fuel_per_step: u64,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            fuel_per_step: 2_000_000_000,
            memory_bytes: 256 << 20,
        }
    }
}

/// What loading the functions folder did, file by file.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Each loaded file with the orchestrators it exports.
    pub loaded: Vec<(PathBuf, Vec<String>)>,
    /// Each file that was skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A compiled, linked orchestrator component, ready to instantiate.
struct LoadedComponent {
    path: PathBuf,
    pre: OrchestrationsPre<GuestState>,
}

/// The wasmtime engine and every orchestrator it can run, by name.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    limits: GuestLimits,
    orchestrators: HashMap<String, Arc<LoadedComponent>>,
}

/// Per-instance host state inside a wasmtime `Store`.
struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimit,
}

/// Caps each linear memory and remembers whether it had to refuse growth,
/// so a failure can be reported as what it is.
struct MemoryLimit {
    max_bytes: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Table elements one instance may have; far above what Rust guests use.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why a guest could not do what was asked; fails the instance.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("no loaded component exports an orchestrator named '{0}'")]
    UnknownOrchestrator(String),
    #[error(
        "the orchestrator exceeded its fuel budget of {0} units in one step (an endless loop?)"
    )]
    OutOfFuel(u64),
    #[error("the orchestrator exceeded its memory limit of {limit_mib} MiB: {message}")]
    OutOfMemory { limit_mib: usize, message: String },
    #[error("the orchestrator trapped: {message}")]
    Trap { message: String },
    /// The host, not the guest, failed (e.g. out of address space); the
    /// instance is not to blame and the episode is retried.
    #[error("the host could not run the orchestrator: {0:#}")]
    Host(anyhow::Error),
}

impl Runtime {
    pub fn new(limits: GuestLimits) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(true)
            .consume_fuel(true)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        determinism::add_instant_waits(&mut linker)?;
        Ok(Runtime {
            engine,
            linker,
            limits,
            orchestrators: HashMap::new(),
        })
    }

    /// Loads every `.wasm` file in `dir`. A file that is not a valid
    /// orchestrator component is skipped with its reason; two files exporting
    /// the same orchestrator name are an error, since either choice would
    /// surprise someone.
    pub fn load_functions_dir(&mut self, dir: &Path) -> anyhow::Result<LoadReport> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the functions folder {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect();
        paths.sort();

        let mut report = LoadReport::default();
        for path in paths {
            match self.load_component(&path) {
                Ok((component, names)) => {
                    let component = Arc::new(component);
                    for name in &names {
                        if let Some(other) = self.orchestrators.get(name) {
                            anyhow::bail!(
                                "orchestrator '{name}' is exported by both {} and {}; remove one of them",
                                other.path.display(),
                                path.display()
                            );
                        }
                        self.orchestrators
                            .insert(name.clone(), Arc::clone(&component));
                    }
                    report.loaded.push((path, names));
                }
                Err(error) => report.skipped.push((path, format!("{error:#}"))),
            }
        }
        Ok(report)
    }

    fn load_component(&self, path: &Path) -> anyhow::Result<(LoadedComponent, Vec<String>)> {
        let bytes = std::fs::read(path).context("cannot read the file")?;
        if bytes.is_empty() {
            anyhow::bail!("the file is empty");
        }
        let component = Component::from_binary(&self.engine, &bytes)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component imports something the orchestrator sandbox does not provide")?;
        let pre = OrchestrationsPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context(
                "the component does not export reprise:orchestration/orchestrator@0.1.0 (build it with reprise-sdk)",
            )?;
        let loaded = LoadedComponent {
            path: path.to_owned(),
            pre,
        };
        let (mut sandbox, bindings) = self
            .instantiate(&loaded, "load", 0)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let names = bindings
            .reprise_orchestration_orchestrator()
            .call_names(&mut sandbox.store)
            .map_err(|error| anyhow::anyhow!("names() failed: {}", sandbox.failure(error)))?;
        if names.is_empty() {
            anyhow::bail!("the component exports no orchestrators");
        }
        Ok((loaded, names))
    }

    pub fn has_orchestrator(&self, name: &str) -> bool {
        self.orchestrators.contains_key(name)
    }

    /// Registered orchestrator names, sorted.
    pub fn orchestrator_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.orchestrators.keys().cloned().collect();
        names.sort();
        names
    }

    /// Constructs the guest's execution resource for one generation.
    pub fn start_execution(
        &self,
        name: &str,
        instance_id: &str,
        input: &str,
        generation: u32,
    ) -> Result<GuestExecution, GuestError> {
        let component = self
            .orchestrators
            .get(name)
            .ok_or_else(|| GuestError::UnknownOrchestrator(name.to_owned()))?;
        let (mut sandbox, bindings) = self.instantiate(component, instance_id, generation)?;
        let handle = bindings
            .reprise_orchestration_orchestrator()
            .execution()
            .call_constructor(&mut sandbox.store, name, instance_id, &input.to_owned())
            .map_err(|error| sandbox.failure(error))?;
        Ok(GuestExecution {
            sandbox,
            bindings,
            handle,
        })
    }

    fn instantiate(
        &self,
        component: &LoadedComponent,
        instance_id: &str,
        generation: u32,
    ) -> Result<(Sandbox, Orchestrations), GuestError> {
        let clock = EpisodeClock::default();
        let stderr = StderrTail::new(STDERR_CAPTURE_BYTES);
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
        let limits = MemoryLimit {
            max_bytes: self.limits.memory_bytes,
            refused: false,
        };
        let mut store = Store::new(
            &self.engine,
            GuestState {
                wasi,
                table: ResourceTable::new(),
                limits,
            },
        );
        store.limiter(|state| &mut state.limits);
        let mut sandbox = Sandbox {
            store,
            clock,
            stderr,
            fuel_per_step: self.limits.fuel_per_step,
        };
        sandbox.refuel();
        let bindings = component
            .pre
            .instantiate(&mut sandbox.store)
            .map_err(|error| match error.downcast_ref::<wasmtime::Trap>() {
                Some(_) => sandbox.failure(error),
                None => GuestError::Host(error.into()),
            })?;
        Ok((sandbox, bindings))
    }
}

/// How much of a guest's stderr (panic messages) is kept for error reports.
const STDERR_CAPTURE_BYTES: usize = 16 << 10;

/// A guest's store, with the handles the host keeps on its sandbox.
struct Sandbox {
    store: Store<GuestState>,
    clock: EpisodeClock,
    stderr: StderrTail,
    fuel_per_step: u64,
}

impl Sandbox {
    fn refuel(&mut self) {
        self.store
            .set_fuel(self.fuel_per_step)
            .expect("fuel is enabled in the engine config");
    }

    /// Turns a wasmtime error into a report a person can act on: the trap,
    /// the wasm backtrace, and what the guest printed to stderr (a panic
    /// message, typically).
    fn failure(&self, error: wasmtime::Error) -> GuestError {
        if let Some(wasmtime::Trap::OutOfFuel) = error.downcast_ref::<wasmtime::Trap>() {
            return GuestError::OutOfFuel(self.fuel_per_step);
        }
        let mut message = format!("{error:?}");
        let stderr = self.stderr.contents();
        if !stderr.is_empty() {
            message.push_str("\nguest stderr (last part):\n");
            message.push_str(stderr.trim_end());
        }
        let limit = &self.store.data().limits;
        if limit.refused {
            return GuestError::OutOfMemory {
                limit_mib: limit.max_bytes >> 20,
                message,
            };
        }
        GuestError::Trap { message }
    }
}

/// One generation of one instance, alive inside its own wasmtime store.
pub struct GuestExecution {
    sandbox: Sandbox,
    bindings: Orchestrations,
    handle: ResourceAny,
}

impl GuestExecution {
    /// Feeds one episode's events; `episode_time` is what the guest's clocks read.
    pub fn step(
        &mut self,
        episode_time: Millis,
        events: &[wire::HistoryEvent],
    ) -> Result<Vec<wire::Action>, GuestError> {
        let sandbox = &mut self.sandbox;
        sandbox.clock.set(episode_time);
        sandbox.refuel();
        self.bindings
            .reprise_orchestration_orchestrator()
            .execution()
            .call_step(&mut sandbox.store, self.handle, events)
            .map_err(|error| sandbox.failure(error))
    }
}
