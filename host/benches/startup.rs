//! Start-up with many components: the time from launching `reprise serve`
//! to its "listening" line, with 50 distinct components in the functions
//! folder, with a cold compile cache (first start) and a warm one
//! (restarts). Baseline in the same run: the same with an empty folder.
//!
//! The 50 components are copies of the `startup-probe` test guest with the
//! digits of its orchestrator's name rewritten in the bytes.
//!
//! Run with `cargo bench -p reprise-host --bench startup`.

#[allow(dead_code)]
mod support;

use std::time::Instant;

use support::harness::{TestHost, components};
use support::{ms, quantile};

const COMPONENTS: usize = 50;
const RESTARTS: usize = 5;

fn main() {
    support::run(async {
        let empty = start_times(TestHost::prepare(&[])).await;

        let host = TestHost::prepare(&[]);
        let probe = std::fs::read(&components().startup_probe).unwrap();
        for n in 0..COMPONENTS {
            let copy = rename(&probe, n);
            let path = host.functions_dir().join(format!("probe_{n:04}.wasm"));
            std::fs::write(path, copy).unwrap();
        }
        let loaded = start_times(host).await;
        assert!(loaded.0 > 0.0);

        println!("\nstart-up to listening, {COMPONENTS} components\n");
        println!("| case | cold cache ms | warm cache ms (median of {RESTARTS}) |");
        println!("|---|---|---|");
        println!(
            "| baseline: empty functions folder | {:.0} | {:.0} |",
            empty.0, empty.1
        );
        println!(
            "| {COMPONENTS} components | {:.0} | {:.0} |",
            loaded.0, loaded.1
        );
    });
}

/// `StartupProbe_0000` in the bytes becomes `StartupProbe_{n:04}`.
fn rename(component: &[u8], n: usize) -> Vec<u8> {
    let from = b"StartupProbe_0000";
    let to = format!("StartupProbe_{n:04}");
    let mut bytes = component.to_vec();
    let mut found = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..]
        .windows(from.len())
        .position(|window| window == from)
    {
        let start = at + offset;
        bytes[start..start + from.len()].copy_from_slice(to.as_bytes());
        at = start + from.len();
        found += 1;
    }
    assert!(found > 0, "the probe's name is not in its bytes");
    bytes
}

/// Milliseconds of the first start (cold cache) and the median restart.
async fn start_times(host: TestHost) -> (f64, f64) {
    let started = Instant::now();
    let mut host = host.started().await;
    let cold = ms(started.elapsed());
    let mut warm = Vec::new();
    for _ in 0..RESTARTS {
        let started = Instant::now();
        host.restart().await;
        warm.push(ms(started.elapsed()));
    }
    assert!(!host.log().contains("skipped"), "{}", host.log());
    (cold, quantile(&mut warm, 0.5))
}
