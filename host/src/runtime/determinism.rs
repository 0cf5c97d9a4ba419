//! The only time and randomness an orchestrator gets: replay-safe stand-ins
//! for the WASI clocks and random sources.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiView};

use crate::model::Millis;

/// The WASI clocks version whose `subscribe-*` functions are replaced; guests
/// importing any 0.2.x version link to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Makes clock waits (`std::thread::sleep`, timeouts) resolve at once.
///
/// An orchestrator's time is the episode's recorded time and does not pass
/// while it runs; waiting in real time would only hold a worker thread
/// (forever, for `Duration::MAX`) where no fuel is burned. Orchestrators wait
/// for events or durable timers instead.
pub(super) fn add_instant_waits<T: WasiView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (_nanos,): (u64,)| {
        elapsed(store.data_mut())
    })?;
    clock.func_wrap("subscribe-instant", |mut store, (_instant,): (u64,)| {
        elapsed(store.data_mut())
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A pollable that is always ready.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

fn elapsed(state: &mut impl WasiView) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let table = state.ctx().table;
    let resource = table.push(Elapsed)?;
    Ok((subscribe(table, resource)?,))
}

/// A clock that reads the current episode's recorded timestamp, so the
/// orchestrator sees the same time on every replay.
#[derive(Clone, Default)]
pub(super) struct EpisodeClock(Arc<AtomicU64>);

impl EpisodeClock {
    pub(super) fn set(&self, timestamp: Millis) {
        self.0.store(timestamp, Ordering::Relaxed);
    }

    fn millis(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl HostWallClock for EpisodeClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.millis())
    }
}

impl HostMonotonicClock for EpisodeClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.millis().saturating_mul(1_000_000)
    }
}

/// SplitMix64, seeded from the instance ID and generation. Written out here
/// rather than borrowed from a crate so its sequence can never change under a
/// dependency upgrade: recorded histories depend on it.
pub(super) struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    pub(super) fn new(instance_id: &str, generation: u32) -> SeededRandom {
        // FNV-1a over the ID, then the generation: stable across platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in instance_id.bytes().chain(generation.to_le_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        SeededRandom { state: hash }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl rand::TryRng for SeededRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, buffer: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::TryRng;

    fn first_bytes(id: &str, generation: u32) -> [u8; 16] {
        let mut bytes = [0; 16];
        SeededRandom::new(id, generation)
            .try_fill_bytes(&mut bytes)
            .unwrap();
        bytes
    }

    #[test]
    fn the_same_instance_and_generation_get_the_same_sequence() {
        assert_eq!(first_bytes("a", 0), first_bytes("a", 0));
        assert_ne!(first_bytes("a", 0), first_bytes("a", 1));
        assert_ne!(first_bytes("a", 0), first_bytes("b", 0));
    }

    #[test]
    fn the_sequence_is_pinned() {
        // Recorded histories depend on this sequence; it must never change.
        assert_eq!(
            SeededRandom::new("counter", 3).next(),
            0xa555_a980_cef2_6fe5
        );
    }
}
