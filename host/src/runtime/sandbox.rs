//! One guest's wasmtime store and the limits around it, shared by
//! orchestrators and activities.

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::GuestError;
use super::http::HttpPolicy;
use super::stderr::StderrTail;

/// How much of a guest's stderr (panic messages) is kept for error reports.
pub(super) const STDERR_CAPTURE_BYTES: usize = 16 << 10;

/// Per-guest host state inside a wasmtime `Store`.
pub(super) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimit,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_policy,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps each linear memory and remembers whether it had to refuse growth,
/// so a failure can be reported as what it is; counts what it allowed.
struct MemoryLimit {
    max_bytes: usize,
    refused: bool,
    /// Bytes of linear memory the guest has (all its memories).
    in_use: usize,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.in_use += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= super::MAX_TABLE_ELEMENTS)
    }
}

/// A guest's store, with the handles the host keeps on its sandbox.
pub(super) struct Sandbox {
    pub(super) store: Store<GuestState>,
    stderr: StderrTail,
    fuel: u64,
    /// What the current call was given (see [`Sandbox::refuel`]).
    given: u64,
}

impl Sandbox {
    /// A store around `wasi` (whose stderr must be `stderr`), limited to
    /// `memory_bytes`, `fuel` per call, `epoch_ticks` of wall time, and
    /// HTTP requests as `http_policy` allows.
    pub(super) fn new(
        engine: &Engine,
        wasi: WasiCtx,
        stderr: StderrTail,
        memory_bytes: usize,
        fuel: u64,
        epoch_ticks: u64,
        http_policy: HttpPolicy,
    ) -> Sandbox {
        let state = GuestState {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryLimit {
                max_bytes: memory_bytes,
                refused: false,
                in_use: 0,
            },
            http: WasiHttpCtx::new(),
            http_policy,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(epoch_ticks);
        let mut sandbox = Sandbox {
            store,
            stderr,
            fuel,
            given: fuel,
        };
        sandbox.refuel(None);
        sandbox
    }

    /// Fills the tank for one call: the full budget, or `at_most` if less.
    /// Returns what it was given.
    pub(super) fn refuel(&mut self, at_most: Option<u64>) -> u64 {
        let fuel = at_most.map_or(self.fuel, |limit| limit.min(self.fuel));
        self.given = fuel;
        self.store
            .set_fuel(fuel)
            .expect("fuel is enabled in the engine config");
        fuel
    }

    /// Bytes of linear memory the guest has grown to.
    pub(super) fn memory_bytes(&self) -> usize {
        self.store.data().limits.in_use
    }

    /// The fuel one call may burn.
    pub(super) fn fuel_budget(&self) -> u64 {
        self.fuel
    }

    /// Turns a wasmtime error into a report a person can act on: the trap,
    /// the wasm backtrace, and what the guest printed to stderr (a panic
    /// message, typically). Errors that are not the guest's (no trap) are
    /// the host's.
    pub(super) fn failure(&self, error: wasmtime::Error) -> GuestError {
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => return GuestError::OutOfFuel(self.given),
            Some(wasmtime::Trap::Interrupt) => return GuestError::TimedOut,
            _ => {}
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

    /// Like [`failure`](Self::failure) for instantiation, where an error
    /// without a trap is the host's (out of address space, say).
    pub(super) fn instantiation_failure(&self, error: wasmtime::Error) -> GuestError {
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(_) => self.failure(error),
            None => GuestError::Host(error.into()),
        }
    }
}
