//! Where an instance's requests arrive, among hosts sharing one database.
//!
//! An instance runs on one host, which applies a request it accepts for
//! it in the transaction that accepts it; a request another host accepts
//! is queued there and this host woken for it, which costs a second
//! transaction. Behind a balancer that sends each instance's requests to
//! one host, an instance started or taken over elsewhere (while its host
//! was down) would pay that forever. So the owner counts, per instance,
//! the wake-ups for requests one other host accepted in a row; a request
//! it accepts itself, or one accepted by a third host, starts the count
//! over. At [`MOVE_AFTER`], the engine hands the instance over to that
//! host after its next committed episode ([`Store::hand_over`]). Requests
//! spread round robin reach the owner too often for a count to get there;
//! spread at random, 16 in a row through one other host come about once
//! in 14 million requests to an instance on three hosts, and once in
//! 33,000 on two (a move then costs one replay), so instances do not
//! wander. Only with hosts sharing a database: a store one host uses
//! wakes nobody, and nothing is counted.
//!
//! [`Store::hand_over`]: crate::store::Store::hand_over

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Wake-ups in a row for requests one other host accepted, after which
/// an instance moves there.
pub(super) const MOVE_AFTER: u32 = 16;

/// Instances counted at most: beyond, those counted once are forgotten
/// (a count lost only delays a move).
const COUNTED: usize = 100_000;

pub(super) struct Affinity {
    /// Whether hosts share the database (nothing to count otherwise).
    shared: bool,
    /// Per instance: the other host its last requests came through, and
    /// how many wake-ups in a row.
    streaks: Mutex<HashMap<String, (String, u32)>>,
}

impl Affinity {
    /// For a host that shares its store with others.
    pub(super) fn shared() -> Affinity {
        Affinity {
            shared: true,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    /// For the only host of its store: counts nothing.
    pub(super) fn alone() -> Affinity {
        Affinity {
            shared: false,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    /// This host was woken for `id` because `host` accepted a request
    /// for it.
    pub(super) fn accepted_elsewhere(&self, id: &str, host: &str) {
        if !self.shared {
            return;
        }
        let mut streaks = self.streaks();
        if streaks.len() >= COUNTED && !streaks.contains_key(id) {
            streaks.retain(|_, (_, count)| *count > 1);
            if streaks.len() >= COUNTED {
                streaks.clear();
            }
        }
        match streaks.get_mut(id) {
            Some((from, count)) if from == host => *count = count.saturating_add(1),
            _ => {
                streaks.insert(id.to_owned(), (host.to_owned(), 1));
            }
        }
    }

    /// This host accepted a request for `id`, which it runs.
    pub(super) fn accepted_here(&self, id: &str) {
        self.forget(id);
    }

    /// Counts `id` afresh: it finished, or another host runs it now.
    pub(super) fn forget(&self, id: &str) {
        if self.shared {
            self.streaks().remove(id);
        }
    }

    /// The host to hand `id` over to, now that its episode committed: the
    /// one its last [`MOVE_AFTER`] requests came through, if one did.
    /// Starts its count over.
    pub(super) fn moves(&self, id: &str) -> Option<String> {
        if !self.shared {
            return None;
        }
        let mut streaks = self.streaks();
        if streaks.get(id)?.1 < MOVE_AFTER {
            return None;
        }
        streaks.remove(id).map(|(host, _)| host)
    }

    fn streaks(&self) -> MutexGuard<'_, HashMap<String, (String, u32)>> {
        self.streaks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_arriving_at_one_other_host_move_the_instance_there() {
        let affinity = Affinity::shared();
        for _ in 1..MOVE_AFTER {
            affinity.accepted_elsewhere("x", "b");
            assert_eq!(affinity.moves("x"), None);
        }
        affinity.accepted_elsewhere("x", "b");
        assert_eq!(affinity.moves("x").as_deref(), Some("b"));
        assert_eq!(affinity.moves("x"), None, "counted afresh once moved");
    }

    #[test]
    fn a_request_accepted_here_or_through_a_third_host_starts_the_count_over() {
        let affinity = Affinity::shared();
        let almost = |from: &str| {
            for _ in 1..MOVE_AFTER {
                affinity.accepted_elsewhere("x", from);
            }
        };
        almost("b");
        affinity.accepted_here("x");
        affinity.accepted_elsewhere("x", "b");
        assert_eq!(affinity.moves("x"), None, "after a request here");
        almost("b");
        affinity.accepted_elsewhere("x", "c");
        assert_eq!(
            affinity.moves("x"),
            None,
            "after a request through another host"
        );
        affinity.accepted_elsewhere("y", "b");
        assert_eq!(affinity.moves("y"), None, "each instance its own count");
    }

    #[test]
    fn a_full_count_forgets_the_instances_counted_once() {
        let affinity = Affinity::shared();
        for _ in 1..MOVE_AFTER {
            affinity.accepted_elsewhere("busy", "b");
        }
        for n in 1..COUNTED {
            affinity.accepted_elsewhere(&n.to_string(), "b");
        }
        affinity.accepted_elsewhere("new", "b");
        assert_eq!(affinity.streaks().len(), 2, "the busy one and the new one");
        affinity.accepted_elsewhere("busy", "b");
        assert_eq!(affinity.moves("busy").as_deref(), Some("b"));
    }

    #[test]
    fn the_only_host_of_its_store_counts_nothing() {
        let affinity = Affinity::alone();
        for _ in 0..MOVE_AFTER {
            affinity.accepted_elsewhere("x", "b");
        }
        assert_eq!(affinity.moves("x"), None);
        assert!(affinity.streaks().is_empty());
    }

    #[test]
    fn requests_spread_round_robin_never_move_an_instance() {
        let affinity = Affinity::shared();
        for _ in 0..10 * MOVE_AFTER {
            affinity.accepted_here("x");
            affinity.accepted_elsewhere("x", "b");
            affinity.accepted_elsewhere("x", "c");
            assert_eq!(affinity.moves("x"), None);
        }
    }
}
