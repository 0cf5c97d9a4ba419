//! Warm executions: guest instances kept alive between episodes, so that a
//! new event costs one `step` with only the new events instead of a replay
//! of the whole history.
//!
//! An entry is taken out of the cache by the episode that uses it and put
//! back only after that episode's commit, so a failed, stale or refused
//! episode can never leave behind an execution that saw uncommitted events.
//! An entry is used only if it saw exactly the stored history (see
//! [`WarmExecution::matches`]); then the episode does not even read the
//! history. Least recently used entries are evicted beyond the capacity;
//! they replay on their next event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::model::Millis;
use crate::runtime::GuestExecution;
use crate::store::WorkItem;

/// A live execution and the history it has seen: the committed history of
/// `generation` of the instance created at `created_at`, `history_len`
/// entries long. Any entry added without it (a host decision, an episode
/// that failed to commit) makes the lengths differ, and it is not used.
pub(super) struct WarmExecution {
    pub(super) created_at: Millis,
    pub(super) generation: u32,
    pub(super) history_len: usize,
    pub(super) execution: GuestExecution,
}

impl WarmExecution {
    /// Whether it saw exactly the history `work` describes.
    pub(super) fn matches(&self, work: &WorkItem) -> bool {
        self.created_at == work.instance.created_at
            && self.generation == work.instance.generation
            && self.history_len == work.history_len
    }
}

/// The warm executions of the engine, by instance ID.
pub(super) type WarmCache = Lru<WarmExecution>;

/// A map with a capacity that evicts its least recently put entry.
pub(super) struct Lru<T> {
    capacity: usize,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    tick: u64,
    entries: HashMap<String, (u64, T)>,
    /// Last use → key, oldest first.
    by_use: BTreeMap<u64, String>,
}

impl<T> Lru<T> {
    /// Keeps at most `capacity` entries; 0 keeps none.
    pub(super) fn new(capacity: usize) -> Lru<T> {
        Lru {
            capacity,
            inner: Mutex::new(Inner {
                tick: 0,
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
            }),
        }
    }

    pub(super) fn take(&self, id: &str) -> Option<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (tick, warm) = inner.entries.remove(id)?;
        inner.by_use.remove(&tick);
        Some(warm)
    }

    pub(super) fn put(&self, id: &str, warm: T) {
        if self.capacity == 0 {
            return;
        }
        let evicted = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.tick += 1;
            let tick = inner.tick;
            let mut evicted = Vec::new();
            if let Some((old, replaced)) = inner.entries.insert(id.to_owned(), (tick, warm)) {
                inner.by_use.remove(&old);
                evicted.push((old, replaced));
            }
            inner.by_use.insert(tick, id.to_owned());
            while inner.entries.len() > self.capacity {
                let Some((_, oldest)) = inner.by_use.pop_first() else {
                    break;
                };
                evicted.extend(inner.entries.remove(&oldest));
            }
            evicted
        };
        // Dropped outside the lock: freeing a guest's memory takes a moment.
        drop(evicted);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn the_least_recently_put_entry_is_evicted_and_taking_removes() {
        let cache = Lru::new(2);
        cache.put("a", 1);
        cache.put("b", 2);
        cache.put("a", 3);
        cache.put("c", 4);
        assert_eq!(cache.take("b"), None, "b was the oldest");
        assert_eq!(cache.take("a"), Some(3));
        assert_eq!(cache.take("a"), None);
        assert_eq!(cache.len(), 1);
        let off = Lru::new(0);
        off.put("a", 1);
        assert_eq!(off.take("a"), None);
    }
}
