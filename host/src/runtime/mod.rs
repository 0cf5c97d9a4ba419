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
mod catalog;
mod contract;
mod determinism;
mod entity;
mod http;
mod orchestrator;
mod sandbox;
mod stderr;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine};

pub use self::catalog::FileChange;
use self::catalog::{Catalog, Fingerprint, Loaded, Scanned};
pub use self::http::AllowedHosts;
pub use self::orchestrator::GuestExecution;
use self::sandbox::GuestState;

pub use self::contract::wire;
use self::contract::{ActivitiesPre, EntitiesPre, OrchestratorsPre};
pub use self::entity::EntityBatch;

/// How often the engine's epoch advances: the resolution of activity timeouts.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per component, for the instance pool: Rust guests have one memory, a
/// few core instances (the program, adapters, canonical-ABI shims) and
/// tables; these leave room for larger toolchains.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;
/// Elements one guest table may have; far above what Rust guests use (the
/// pool reserves this much per table).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// An epoch deadline that never comes (centuries of ticks).
const NO_DEADLINE: u64 = 1 << 40;

/// Bytes of a freed guest's memory, and of each of its tables, that the
/// pool resets in place (finding the pages it touched with `PAGEMAP_SCAN`
/// where the kernel has it) rather than giving back to the kernel: no
/// `madvise` and TLB shootdown on every free, no page faults on the next
/// instance. A Rust guest touches far less than this.
const KEEP_RESIDENT: usize = 256 << 10;

/// Resource limits for guests.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// Fuel (roughly, wasm instructions) one orchestrator `step` may burn.
    pub fuel_per_step: u64,
    /// Linear memory one guest instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Guest instances that may be alive at once (running episodes and
    /// activities, warm executions): the size of the instance pool, which
    /// is reserved up front (address space, not memory).
    pub instances: u32,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            fuel_per_step: 2_000_000_000,
            memory_bytes: 256 << 20,
            instances: 1_000,
        }
    }
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
    pub entities: Vec<String>,
    /// The version of `reprise:orchestration` it was built against.
    pub contract: &'static str,
}

impl FunctionFile {
    /// Which WIT world the component implements.
    pub fn world(&self) -> &'static str {
        let kinds = (
            !self.orchestrators.is_empty(),
            !self.activities.is_empty(),
            !self.entities.is_empty(),
        );
        match kinds {
            (true, false, false) => "orchestrations",
            (false, true, false) => "activities",
            (false, false, true) => "entities",
            (true, true, false) => "functions (orchestrators and activities)",
            _ => "functions",
        }
    }
}

/// The wasmtime engine and every orchestrator and activity it can run.
pub struct Runtime {
    engine: Engine,
    orchestrator_linker: Linker<GuestState>,
    activity_linker: Linker<GuestState>,
    limits: GuestLimits,
    /// Hosts activities may send HTTP requests to.
    http_hosts: Arc<AllowedHosts>,
    /// Replaced whole on every change; readers take a snapshot.
    catalog: RwLock<Arc<Catalog>>,
    /// Held while the folder is scanned, a version compiled or versions
    /// forgotten: the catalog changes one way at a time.
    reloading: Mutex<()>,
}

/// Why a guest could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("no loaded component exports an orchestrator named '{0}'")]
    UnknownOrchestrator(String),
    /// The instance's component version is neither in memory nor given to
    /// the runtime (the store lost it, or it predates version pinning).
    #[error("component version {0} is not loaded")]
    VersionUnavailable(String),
    #[error("no loaded component exports an activity named '{0}'")]
    UnknownActivity(String),
    #[error("no loaded component exports an entity named '{0}'")]
    UnknownEntity(String),
    #[error("exceeded its fuel budget of {0} units in one step (an endless loop?)")]
    OutOfFuel(u64),
    #[error("exceeded its memory limit of {limit_mib} MiB: {message}")]
    OutOfMemory { limit_mib: usize, message: String },
    #[error("ran past its timeout")]
    TimedOut,
    /// A step given less than the full fuel budget needed more: not the
    /// guest's failure; the step is to run again with the full budget.
    #[error("needed more than the {0} units of fuel this step was given")]
    OverBudget(u64),
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
        // Instances come from a pool of pre-mapped slots: no mmap/munmap
        // per instance, and a slot keeps its copy-on-write memory image
        // for the next instance of the same component.
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(limits.instances)
            .total_core_instances(limits.instances * CORE_INSTANCES_PER_COMPONENT)
            // One per instance on average (Rust guests have one).
            .total_memories(limits.instances)
            .total_tables(limits.instances * TABLES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            // Above the guest limit, so the limiter refuses first and the
            // failure reads "exceeded its memory limit".
            .max_memory_size(limits.memory_bytes + (64 << 10))
            .table_elements(MAX_TABLE_ELEMENTS)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
        let mut pooled = config.clone();
        pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        // The pool reserves address space up front (about 4 GiB per slot);
        // where that is refused (`ulimit -v`), run without it.
        let engine = match Engine::new(&pooled) {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(
                    "cannot reserve the guest instance pool ({error}); allocating instances one by one"
                );
                Engine::new(&config)?
            }
        };
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
            catalog: RwLock::default(),
            reloading: Mutex::new(()),
        })
    }

    /// The catalog as of now; later changes do not affect the snapshot.
    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the catalog with `change(current)`.
    fn update_catalog(&self, change: impl FnOnce(&Catalog) -> Catalog) {
        let mut catalog = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        *catalog = Arc::new(change(&catalog));
    }

    /// Brings the served functions in line with the `.wasm` files in
    /// `dir`: at start-up, and again whenever the folder changes. Files
    /// whose size and modification time are unchanged are not read again;
    /// changed ones are compiled unless their version is already in memory.
    /// A file that cannot be loaded is skipped with its reason (keeping its
    /// previous version, if it had one); so is a file exporting a name that
    /// another file already serves.
    ///
    /// Before the new catalog is served, `record` gets the versions
    /// compiled for the first time (with their bytes) and the versions the
    /// folder now serves; if it fails, nothing changes. Returns what
    /// changed, file by file (at start-up every file is added or skipped).
    pub fn load_functions_dir(
        &self,
        dir: &Path,
        record: impl FnOnce(&[(String, Vec<u8>)], &[String]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<FileChange>> {
        let _reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the functions folder {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect();
        paths.sort();

        let before = self.catalog();
        let mut scanned = BTreeMap::new();
        let mut new_versions = Vec::new();
        for path in paths {
            // A file deleted since the listing is simply not there.
            let Some(fingerprint) = Fingerprint::of(&path) else {
                continue;
            };
            if let Some(version) = before.unchanged_version(&path, fingerprint) {
                let scan = Scanned::Unchanged(fingerprint, version.to_owned());
                scanned.insert(path, scan);
                continue;
            }
            if let Some(scan) = before.unchanged_skip(&path, fingerprint) {
                scanned.insert(path, scan);
                continue;
            }
            let scan = match read_component(&path) {
                Err(error) => Scanned::Failed(fingerprint, one_line(&error)),
                Ok((version, _)) if before.served_version(&path) == Some(version.as_str()) => {
                    Scanned::Unchanged(fingerprint, version)
                }
                Ok((version, bytes)) => match before.versions.get(&version) {
                    Some(loaded) => {
                        // In memory (an older build deployed again), but
                        // its row may have been collected: record it too.
                        new_versions.push((version, bytes));
                        Scanned::Loaded(fingerprint, Arc::clone(loaded))
                    }
                    None => match self.compile(version, &bytes) {
                        Ok(loaded) => {
                            new_versions.push((loaded.version.clone(), bytes));
                            Scanned::Loaded(fingerprint, Arc::new(loaded))
                        }
                        Err(error) => Scanned::Failed(fingerprint, one_line(&error)),
                    },
                },
            };
            scanned.insert(path, scan);
        }
        let (next, changes) = before.reload(scanned);
        record(&new_versions, &next.current_versions())?;
        // `load_version` and `forget_versions` hold the same lock, so
        // nothing changed the catalog since `before`.
        self.update_catalog(|_| next);
        Ok(changes)
    }

    /// Loads `path` as `reprise check` does: what it provides, or why it
    /// would be skipped. Registers nothing.
    pub fn check_file(&self, path: &Path) -> anyhow::Result<FunctionFile> {
        let (version, bytes) = read_component(path)?;
        Ok(self.compile(version, &bytes)?.describe(path))
    }

    /// Compiles the component at `path` and keeps it in memory as its
    /// version, serving no name: `reprise replay` runs recorded instances
    /// on it. What it provides, or why it cannot be loaded.
    pub fn load_file_version(&self, path: &Path) -> anyhow::Result<FunctionFile> {
        let (version, bytes) = read_component(path)?;
        self.load_version(&version, &bytes)?;
        let catalog = self.catalog();
        let loaded = catalog.versions.get(&version).context("was just loaded")?;
        Ok(loaded.describe(path))
    }

    /// The served files, in path order.
    pub fn files(&self) -> Vec<FunctionFile> {
        self.catalog().files()
    }

    /// The version new instances of orchestrator `name` start on; `None`
    /// if no served file exports it.
    pub fn current_version(&self, orchestrator: &str) -> Option<String> {
        self.catalog()
            .current_orchestrator(orchestrator)
            .map(str::to_owned)
    }

    /// Whether a served file exports orchestrator `name`.
    pub fn serves_orchestrator(&self, name: &str) -> bool {
        self.catalog().current_orchestrator(name).is_some()
    }

    /// Whether a served file exports entity `name` (in any case).
    pub fn serves_entity(&self, name: &str) -> bool {
        self.catalog().current_entity(name).is_some()
    }

    /// Whether a served file exports activity `name`.
    pub fn serves_activity(&self, name: &str) -> bool {
        self.catalog().current_activity(name).is_some()
    }

    /// Whether `version` is in memory, ready to run.
    pub fn has_version(&self, version: &str) -> bool {
        self.catalog().versions.contains_key(version)
    }

    /// Compiles `bytes` (kept by the store) so instances pinned to
    /// `version` can run although no file serves it any more.
    pub fn load_version(&self, version: &str, bytes: &[u8]) -> anyhow::Result<()> {
        // One compile, however many instances of the version wake at once.
        let _loading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        if self.has_version(version) {
            return Ok(());
        }
        let actual = version_of(bytes);
        if actual != version {
            anyhow::bail!("the stored bytes of {version} hash to {actual}");
        }
        let loaded = Arc::new(self.compile(actual, bytes)?);
        self.update_catalog(|current| {
            let mut next = current.clone();
            next.versions.insert(version.to_owned(), loaded);
            next
        });
        Ok(())
    }

    /// Drops `versions` from memory unless a served file still uses them.
    pub fn forget_versions(&self, versions: &[String]) {
        let _reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        self.update_catalog(|current| {
            let served = current.current_versions();
            let mut next = current.clone();
            for version in versions.iter().filter(|version| !served.contains(version)) {
                next.versions.remove(version);
            }
            next
        });
    }

    fn compile(&self, version: String, bytes: &[u8]) -> anyhow::Result<Loaded> {
        let component = Component::from_binary(&self.engine, bytes)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        let orchestrators = self.load_orchestrators(&component);
        let activities = self.load_activities(&component);
        let entities = self.load_entities(&component);
        let (orchestrators, activities, entities) = match (orchestrators, activities, entities) {
            (Err(orchestrator_error), Err(activity_error), Err(_)) => {
                return Err(orchestrator_error.context(format!(
                    "not an orchestrator component; nor an activity component: {activity_error:#}"
                )));
            }
            (orchestrators, activities, entities) => (
                orchestrators.ok().filter(|(_, names)| !names.is_empty()),
                activities.ok().filter(|(_, names)| !names.is_empty()),
                entities.ok().filter(|(_, names)| !names.is_empty()),
            ),
        };
        if orchestrators.is_none() && activities.is_none() && entities.is_none() {
            anyhow::bail!("the component exports no orchestrators, activities or entities");
        }
        let (orchestrators, orchestrator_names) = orchestrators.unzip();
        let (activities, activity_names) = activities.unzip();
        let (entities, entity_names) = entities.unzip();
        Ok(Loaded {
            version,
            orchestrators,
            orchestrator_names: orchestrator_names.unwrap_or_default(),
            activities,
            activity_names: activity_names.unwrap_or_default(),
            entities,
            entity_names: entity_names.unwrap_or_default(),
        })
    }

    fn load_orchestrators(
        &self,
        component: &Component,
    ) -> anyhow::Result<(OrchestratorsPre, Vec<String>)> {
        let linker = &self.orchestrator_linker;
        self.load_exports(
            linker,
            component,
            "orchestrator",
            OrchestratorsPre::new,
            |pre| self.orchestrator_names_of(pre),
        )
    }

    fn load_activities(
        &self,
        component: &Component,
    ) -> anyhow::Result<(ActivitiesPre, Vec<String>)> {
        let linker = &self.activity_linker;
        self.load_exports(linker, component, "activity", ActivitiesPre::new, |pre| {
            self.activity_names_of(pre)
        })
    }

    /// Entities run in a sandbox like the orchestrators' (no network).
    fn load_entities(&self, component: &Component) -> anyhow::Result<(EntitiesPre, Vec<String>)> {
        let linker = &self.orchestrator_linker;
        self.load_exports(linker, component, "entity", EntitiesPre::new, |pre| {
            self.entity_names_of(pre)
        })
    }

    /// `component`'s export of one `interface`, linked by `linker`, and
    /// the names it says it has.
    fn load_exports<P>(
        &self,
        linker: &Linker<GuestState>,
        component: &Component,
        interface: &str,
        exports: impl FnOnce(InstancePre<GuestState>) -> anyhow::Result<P>,
        names: impl FnOnce(&P) -> Result<Vec<String>, GuestError>,
    ) -> anyhow::Result<(P, Vec<String>)> {
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("the component imports something the {interface} sandbox does not provide")
            })?;
        let pre = exports(instance_pre)?;
        let names = names(&pre).map_err(|error| {
            anyhow::anyhow!("names() of the {interface} export failed: {error}")
        })?;
        Ok((pre, names))
    }

    /// Served orchestrator names, sorted.
    pub fn orchestrator_names(&self) -> Vec<String> {
        self.catalog().orchestrator_names()
    }
}

/// `sha256:` and the hex digest of `bytes`: a component's version.
fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// An error and its causes on one line (wasmparser's span several), for a log.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file's version and bytes, unless it is empty or unreadable.
fn read_component(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).context("cannot read the file")?;
    if bytes.is_empty() {
        anyhow::bail!("the file is empty");
    }
    Ok((version_of(&bytes), bytes))
}
