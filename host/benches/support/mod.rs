//! What the benches share: the integration-test harness (a real `reprise`
//! process on loopback), a runtime to drive it, and sample summaries.

#[path = "../../../tests/integration/harness.rs"]
pub mod harness;

use std::future::Future;
use std::time::Duration;

/// Runs a bench on a multi-threaded runtime, like the integration tests.
pub fn run(bench: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(bench);
}

pub fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// The `quantile` (0 to 1) of `samples`, nearest rank; sorts them.
pub fn quantile(samples: &mut [f64], quantile: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * quantile).round() as usize]
}
