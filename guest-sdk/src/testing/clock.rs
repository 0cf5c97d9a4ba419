//! The virtual clock: "now" as the test sets it, and what comes due as it
//! moves (durable timers, events the test raises at a chosen time).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wire::EventRaised;

/// 2026-01-01T00:00:00Z, in milliseconds since the Unix epoch.
pub(super) const DEFAULT_START_MS: u64 = 1_767_225_600_000;

/// Something that happens when the clock reaches its time.
#[derive(Debug)]
pub(super) enum Due {
    /// The durable timer with this task ID, of the running generation.
    Timer(u64),
    /// An event the test raises at this time.
    Event(EventRaised),
}

#[derive(Debug)]
struct Scheduled {
    at_ms: u64,
    /// Order of scheduling, which breaks ties between equal times.
    order: u64,
    due: Due,
}

#[derive(Debug)]
pub(super) struct Clock {
    now_ms: u64,
    scheduled: Vec<Scheduled>,
    next_order: u64,
}

impl Clock {
    pub(super) fn starting_at(now_ms: u64) -> Clock {
        Clock {
            now_ms,
            scheduled: Vec::new(),
            next_order: 0,
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Moves "now" to `now_ms`, which must not be earlier.
    pub(super) fn set_now(&mut self, now_ms: u64) {
        assert!(
            now_ms >= self.now_ms,
            "the virtual clock cannot go back: it is {} and was asked to move to {}",
            describe(self.now_ms),
            describe(now_ms),
        );
        self.now_ms = now_ms;
    }

    pub(super) fn schedule(&mut self, at_ms: u64, due: Due) {
        self.scheduled.push(Scheduled {
            at_ms,
            order: self.next_order,
            due,
        });
        self.next_order += 1;
    }

    /// The time of the earliest scheduled thing, if any.
    pub(super) fn next_due_ms(&self) -> Option<u64> {
        self.scheduled.iter().map(|scheduled| scheduled.at_ms).min()
    }

    /// The fire-at time of the earliest pending timer, if any.
    pub(super) fn next_timer_ms(&self) -> Option<u64> {
        self.scheduled
            .iter()
            .filter(|scheduled| matches!(scheduled.due, Due::Timer(_)))
            .map(|scheduled| scheduled.at_ms)
            .min()
    }

    /// Removes and returns everything due by now, earliest first (ties in
    /// the order they were scheduled).
    pub(super) fn take_due(&mut self) -> Vec<Due> {
        let (mut due, pending): (Vec<Scheduled>, Vec<Scheduled>) =
            std::mem::take(&mut self.scheduled)
                .into_iter()
                .partition(|scheduled| scheduled.at_ms <= self.now_ms);
        self.scheduled = pending;
        due.sort_by_key(|scheduled| (scheduled.at_ms, scheduled.order));
        due.into_iter().map(|scheduled| scheduled.due).collect()
    }

    /// Forgets the pending timer of task `id`: the orchestrator cancelled it.
    pub(super) fn cancel_timer(&mut self, id: u64) {
        self.scheduled
            .retain(|scheduled| !matches!(scheduled.due, Due::Timer(timer) if timer == id));
    }

    /// Forgets every pending timer: their generation ended.
    pub(super) fn drop_timers(&mut self) {
        self.scheduled
            .retain(|scheduled| !matches!(scheduled.due, Due::Timer(_)));
    }
}

pub(super) fn to_millis(time: SystemTime) -> u64 {
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .expect("the virtual clock starts at or after the Unix epoch");
    u64::try_from(since_epoch.as_millis()).expect("a time in milliseconds fits in u64")
}

pub(super) fn to_time(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// A time for messages, as milliseconds since the Unix epoch.
fn describe(millis: u64) -> String {
    format!("{millis} ms after the Unix epoch")
}
