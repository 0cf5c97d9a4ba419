//! Guests on wasmtime: loading components, sandboxing, running them.
//!
//! This is the only module that knows wasmtime. Read
//! [`Runtime::load_functions_dir`] for how the functions folder becomes
//! tables of orchestrators and activities, then [`GuestExecution`]
//! (`orchestrator.rs`) for one running generation and
//! [`Runtime::run_activity`] (`activity.rs`) for one activity call.
//!
//! Two sandboxes share one engine. Orchestrators get WASI with no
//! filesystem, network, environment or arguments; their clocks read the
//! episode's recorded time and their random source is seeded from instance
//! ID and generation (`determinism.rs`); NaN bit patterns are canonicalized;
//! each step has a fuel budget. Activities get real clocks and randomness
//! and a wall-clock timeout (epoch interruption), and may send HTTP requests
//! to the hosts the operator allowed (`http.rs`). Every guest has a memory
//! cap (`sandbox.rs`), so a runaway guest fails its own work and nothing else.

mod activity;
mod determinism;
mod http;
mod orchestrator;
mod sandbox;
mod stderr;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use self::activity::LoadedActivities;
pub use self::http::AllowedHosts;
pub use self::orchestrator::GuestExecution;
use self::orchestrator::LoadedOrchestrators;
use self::sandbox::GuestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "orchestrations",
    });

    pub mod activities {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "activities",
        });
    }
}

use bindings::OrchestrationsPre;
use bindings::activities::ActivitiesPre;

/// The types exchanged with orchestrators, as generated from `wit/`.
pub mod wire {
    pub use super::bindings::reprise::orchestration::types::{
        Action, ContinueAsNew, CreateTimer, EventRaised, ExecutionStarted, HistoryEvent,
        StartSubOrchestration, TaskCompleted, TaskFailed,
    };
}

/// How often the engine's epoch advances: the resolution of activity timeouts.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// An epoch deadline that never comes (centuries of ticks).
const NO_DEADLINE: u64 = 1 << 40;

/// Resource limits for guests.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// Fuel (roughly, wasm instructions) one orchestrator `step` may burn.
    pub fuel_per_step: u64,
    /// Linear memory one guest instance may grow to, in bytes.
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
    /// Each loaded file with the orchestrators and activities it exports.
    pub loaded: Vec<FunctionFile>,
    /// Each file that was skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// `sha256:0123456789ab`: enough of a [`FunctionFile::version`] to tell
/// builds apart in a log or a table.
pub fn short_version(version: &str) -> &str {
    version.get(.."sha256:".len() + 12).unwrap_or(version)
}

/// One component file and what it provides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FunctionFile {
    pub path: PathBuf,
    /// `sha256:` and the hex digest of the file's bytes: which build this is.
    pub version: String,
    pub orchestrators: Vec<String>,
    pub activities: Vec<String>,
}

impl FunctionFile {
    /// Which WIT world the component implements.
    pub fn world(&self) -> &'static str {
        match (self.orchestrators.is_empty(), self.activities.is_empty()) {
            (false, false) => "functions (orchestrators and activities)",
            (false, true) => "orchestrations",
            _ => "activities",
        }
    }
}

/// The wasmtime engine and every orchestrator and activity it can run, by name.
pub struct Runtime {
    engine: Engine,
    orchestrator_linker: Linker<GuestState>,
    activity_linker: Linker<GuestState>,
    limits: GuestLimits,
    /// Hosts activities may send HTTP requests to.
    http_hosts: Arc<AllowedHosts>,
    orchestrators: HashMap<String, Arc<LoadedOrchestrators>>,
    activities: HashMap<String, Arc<LoadedActivities>>,
    /// The loaded files, in load order.
    files: Vec<FunctionFile>,
}

/// Why a guest could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("no loaded component exports an orchestrator named '{0}'")]
    UnknownOrchestrator(String),
    #[error("no loaded component exports an activity named '{0}'")]
    UnknownActivity(String),
    #[error("exceeded its fuel budget of {0} units in one step (an endless loop?)")]
    OutOfFuel(u64),
    #[error("exceeded its memory limit of {limit_mib} MiB: {message}")]
    OutOfMemory { limit_mib: usize, message: String },
    #[error("ran past its timeout")]
    TimedOut,
    #[error("trapped: {message}")]
    Trap { message: String },
    /// The host, not the guest, failed (e.g. out of address space); the
    /// guest is not to blame and the work is retried.
    #[error("the host could not run the guest: {0:#}")]
    Host(anyhow::Error),
}

impl Runtime {
    /// `compile_cache`: a folder where compiled components are kept, keyed
    /// by their bytes and the engine's settings, so a restart does not
    /// compile them again.
    pub fn new(
        limits: GuestLimits,
        http_hosts: AllowedHosts,
        compile_cache: Option<&Path>,
    ) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        if let Some(folder) = compile_cache {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(folder);
            config.cache(Some(
                wasmtime::Cache::new(cache)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!("cannot use {} as the compile cache", folder.display())
                    })?,
            ));
        }
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
        let engine = Engine::new(&config)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("reprise-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        let mut orchestrator_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut orchestrator_linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut orchestrator_linker)?;
        determinism::add_instant_waits(&mut orchestrator_linker)?;
        let mut activity_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut activity_linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut activity_linker)?;
        Ok(Runtime {
            engine,
            orchestrator_linker,
            activity_linker,
            limits,
            http_hosts: Arc::new(http_hosts),
            orchestrators: HashMap::new(),
            activities: HashMap::new(),
            files: Vec::new(),
        })
    }

    /// Loads every `.wasm` file in `dir`. A file that is neither an
    /// orchestrator nor an activity component is skipped with its reason;
    /// two files exporting the same name are an error, since either choice
    /// would surprise someone.
    pub fn load_functions_dir(&mut self, dir: &Path) -> anyhow::Result<LoadReport> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the functions folder {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect();
        paths.sort();

        let mut report = LoadReport::default();
        for path in paths {
            match self.load_file(&path) {
                Ok(loaded) => {
                    if let Some((component, orchestrators)) = &loaded.orchestrators {
                        register(
                            &mut self.orchestrators,
                            "orchestrator",
                            orchestrators,
                            component,
                            |c| &c.path,
                        )?;
                    }
                    if let Some((component, activities)) = &loaded.activities {
                        register(
                            &mut self.activities,
                            "activity",
                            activities,
                            component,
                            |c| &c.path,
                        )?;
                    }
                    let file = loaded.describe(&path);
                    self.files.push(file.clone());
                    report.loaded.push(file);
                }
                Err(error) => report.skipped.push((path, format!("{error:#}"))),
            }
        }
        Ok(report)
    }

    /// Loads `path` as `reprise check` does: what it provides, or why it
    /// would be skipped. Registers nothing.
    pub fn check_file(&self, path: &Path) -> anyhow::Result<FunctionFile> {
        Ok(self.load_file(path)?.describe(path))
    }

    /// Every loaded file, in load order.
    pub fn files(&self) -> &[FunctionFile] {
        &self.files
    }

    fn load_file(&self, path: &Path) -> anyhow::Result<LoadedFile> {
        let bytes = std::fs::read(path).context("cannot read the file")?;
        if bytes.is_empty() {
            anyhow::bail!("the file is empty");
        }
        let version = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("sha256:{hex}")
        };
        let component = Component::from_binary(&self.engine, &bytes)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        let orchestrators = self.load_orchestrators(path, &component);
        let activities = self.load_activities(path, &component);
        let loaded = match (orchestrators, activities) {
            (Err(orchestrator_error), Err(activity_error)) => {
                return Err(orchestrator_error.context(format!(
                    "not an orchestrator component; nor an activity component: {activity_error:#}"
                )));
            }
            (orchestrators, activities) => LoadedFile {
                version,
                orchestrators: orchestrators.ok().filter(|(_, names)| !names.is_empty()),
                activities: activities.ok().filter(|(_, names)| !names.is_empty()),
            },
        };
        if loaded.orchestrators.is_none() && loaded.activities.is_none() {
            anyhow::bail!("the component exports no orchestrators and no activities");
        }
        Ok(loaded)
    }

    fn load_orchestrators(
        &self,
        path: &Path,
        component: &Component,
    ) -> anyhow::Result<(Arc<LoadedOrchestrators>, Vec<String>)> {
        let instance_pre = self
            .orchestrator_linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .context("the component imports something the orchestrator sandbox does not provide")?;
        let pre = OrchestrationsPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context(
                "the component does not export reprise:orchestration/orchestrator@0.1.0 (build it with reprise-sdk)",
            )?;
        let loaded = LoadedOrchestrators {
            path: path.to_owned(),
            pre,
        };
        let names = self.orchestrator_names_of(&loaded).map_err(|error| {
            anyhow::anyhow!("names() of the orchestrator export failed: {error}")
        })?;
        Ok((Arc::new(loaded), names))
    }

    fn load_activities(
        &self,
        path: &Path,
        component: &Component,
    ) -> anyhow::Result<(Arc<LoadedActivities>, Vec<String>)> {
        let instance_pre = self
            .activity_linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .context("the component imports something the activity sandbox does not provide")?;
        let pre = ActivitiesPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export reprise:orchestration/activity@0.1.0")?;
        let loaded = LoadedActivities {
            path: path.to_owned(),
            pre,
        };
        let names = self
            .activity_names_of(&loaded)
            .map_err(|error| anyhow::anyhow!("names() of the activity export failed: {error}"))?;
        Ok((Arc::new(loaded), names))
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
}

/// What one file of the functions folder provides.
struct LoadedFile {
    version: String,
    orchestrators: Option<(Arc<LoadedOrchestrators>, Vec<String>)>,
    activities: Option<(Arc<LoadedActivities>, Vec<String>)>,
}

impl LoadedFile {
    fn describe(&self, path: &Path) -> FunctionFile {
        let names = |loaded: Option<&Vec<String>>| loaded.cloned().unwrap_or_default();
        FunctionFile {
            path: path.to_owned(),
            version: self.version.clone(),
            orchestrators: names(self.orchestrators.as_ref().map(|(_, names)| names)),
            activities: names(self.activities.as_ref().map(|(_, names)| names)),
        }
    }
}

/// Adds `names` of `component` to `table`, refusing a name another file has.
fn register<C>(
    table: &mut HashMap<String, Arc<C>>,
    kind: &str,
    names: &[String],
    component: &Arc<C>,
    path_of: impl Fn(&C) -> &PathBuf,
) -> anyhow::Result<()> {
    for name in names {
        if let Some(other) = table.get(name) {
            anyhow::bail!(
                "{kind} '{name}' is exported by both {} and {}; remove one of them",
                path_of(other).display(),
                path_of(component).display()
            );
        }
        table.insert(name.clone(), Arc::clone(component));
    }
    Ok(())
}
