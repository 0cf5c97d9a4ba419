//! Warm executions: guest instances kept alive between episodes, so that a
//! new event costs one `step` with only the new events instead of a replay
//! of the whole history.
//!
//! An entry is taken out of the cache by the episode that uses it and put
//! back only after that episode's commit, so a failed, stale or refused
//! episode can never leave behind an execution that saw uncommitted events.
//! An entry is used only if it saw exactly the stored history (see
//! [`WarmExecution::matches`]); then the episode does not even read the
//! history. Least recently used entries are evicted beyond the capacity,
//! in count and in guest memory; they replay on their next event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::model::Instance;
use crate::runtime::GuestExecution;
use crate::store::WorkItem;

/// A live execution and what it has seen: the instance as its last episode
/// committed it, whose current generation's history was `history_len`
/// entries long. Any change made without it (a host decision, an episode
/// that failed to commit) makes the row or the length differ, and it is
/// not used.
pub(super) struct WarmExecution {
    pub(super) instance: Instance,
    pub(super) history_len: usize,
    pub(super) execution: GuestExecution,
    /// The lock its generation holds or asked for, if any.
    pub(super) open_lock: Option<super::entity_calls::OpenLock>,
}

impl WarmExecution {
    /// Whether it saw exactly the instance and history `work` describes.
    pub(super) fn matches(&self, work: &WorkItem) -> bool {
        self.instance == work.instance && self.history_len == work.history_len
    }
}

/// The warm executions of the engine, by instance ID, weighed by their
/// guest memory.
pub(super) type WarmCache = Lru<WarmExecution>;

impl WarmCache {
    pub(super) fn keep(&self, id: &str, warm: WarmExecution) {
        let bytes = warm.execution.memory_bytes();
        self.put(id, warm, bytes);
    }
}

/// A map with a capacity in entries and in total weight that evicts its
/// least recently put entries.
pub(super) struct Lru<T> {
    capacity: usize,
    max_weight: usize,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    tick: u64,
    /// Key → (last use, weight, value).
    entries: HashMap<String, (u64, usize, T)>,
    /// Last use → key, oldest first.
    by_use: BTreeMap<u64, String>,
    weight: usize,
}

impl<T> Lru<T> {
    /// Keeps at most `capacity` entries weighing at most `max_weight` in
    /// all; 0 keeps none.
    pub(super) fn new(capacity: usize, max_weight: usize) -> Lru<T> {
        Lru {
            capacity,
            max_weight,
            inner: Mutex::new(Inner {
                tick: 0,
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                weight: 0,
            }),
        }
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.contains_key(id)
    }

    pub(super) fn take(&self, id: &str) -> Option<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (tick, weight, warm) = inner.entries.remove(id)?;
        inner.by_use.remove(&tick);
        inner.weight -= weight;
        Some(warm)
    }

    pub(super) fn put(&self, id: &str, warm: T, weight: usize) {
        if self.capacity == 0 || weight > self.max_weight {
            return;
        }
        let evicted = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.tick += 1;
            let tick = inner.tick;
            let mut evicted = Vec::new();
            inner.weight += weight;
            if let Some((old, old_weight, replaced)) =
                inner.entries.insert(id.to_owned(), (tick, weight, warm))
            {
                inner.by_use.remove(&old);
                inner.weight -= old_weight;
                evicted.push(replaced);
            }
            inner.by_use.insert(tick, id.to_owned());
            while inner.entries.len() > self.capacity || inner.weight > self.max_weight {
                let Some((_, oldest)) = inner.by_use.pop_first() else {
                    break;
                };
                if let Some((_, weight, value)) = inner.entries.remove(&oldest) {
                    inner.weight -= weight;
                    evicted.push(value);
                }
            }
            evicted
        };
        // Dropped outside the lock: freeing a guest's memory takes a moment.
        drop(evicted);
    }

    /// The entries kept.
    pub(super) fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn the_least_recently_put_entry_is_evicted_and_taking_removes() {
        let cache = Lru::new(2, 100);
        cache.put("a", 1, 1);
        cache.put("b", 2, 1);
        cache.put("a", 3, 1);
        cache.put("c", 4, 1);
        assert_eq!(cache.take("b"), None, "b was the oldest");
        assert_eq!(cache.take("a"), Some(3));
        assert_eq!(cache.take("a"), None);
        assert_eq!(cache.len(), 1);
        let off = Lru::new(0, 100);
        off.put("a", 1, 1);
        assert_eq!(off.take("a"), None);
    }

    #[test]
    fn entries_are_evicted_beyond_the_total_weight() {
        let cache = Lru::new(10, 100);
        cache.put("a", 1, 40);
        cache.put("b", 2, 40);
        cache.put("a", 3, 50);
        // 50 + 40 fit; a heavier "c" pushes out "b", the oldest.
        cache.put("c", 4, 30);
        assert_eq!(cache.take("b"), None);
        assert_eq!(cache.take("c"), Some(4));
        // Taking gives its weight back: 50 + 50 fit.
        cache.put("d", 5, 50);
        assert_eq!(cache.take("a"), Some(3));
        assert_eq!(cache.take("d"), Some(5));
        // Heavier than the whole cache: not kept.
        cache.put("e", 6, 101);
        assert_eq!(cache.take("e"), None);
    }
}
