//! Fires durable timers: sleeps until the earliest one is due, turns due
//! timers into inbox messages (one transaction), and schedules their
//! instances. Woken early whenever an episode creates a timer.

use std::sync::Arc;
use std::time::Duration;

use super::{Engine, blocking};
use crate::model::now_millis;

/// How long to sleep when no timer exists, or after a storage error.
const IDLE_RECHECK: Duration = Duration::from_secs(60);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

pub(super) async fn run(engine: Engine) {
    loop {
        let store = Arc::clone(&engine.shared.store);
        let result = blocking(move || {
            let fired = store.fire_due_timers(now_millis())?;
            let next_due = store.next_timer_due()?;
            Ok((fired, next_due))
        })
        .await;
        let wait = match result {
            Ok((fired, next_due)) => {
                for id in &fired {
                    engine.notify(id);
                }
                next_due.map_or(IDLE_RECHECK, |due| {
                    Duration::from_millis(due.saturating_sub(now_millis())).min(IDLE_RECHECK)
                })
            }
            Err(error) => {
                tracing::error!("cannot fire timers, retrying in {ERROR_BACKOFF:?}: {error:#}");
                ERROR_BACKOFF
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = engine.shared.timers_changed.notified() => {}
        }
    }
}
