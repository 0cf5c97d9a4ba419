//! The store contract as tests: what every backend of [`Store`] must pass
//! (ARCHITECTURE.md, "The store contract", says it in prose).
//!
//! Each test is a function of a fresh, empty store (`pub fn
//! test_name(store: &dyn Store)`) that panics on failure, like a test.
//! A backend runs them all with one line in its tests, the
//! [`store_conformance_tests!`](crate::store_conformance_tests) macro,
//! which expands to one `#[test]` per function; its own tests (files,
//! SQL, crashes) stay beside that line.
//!
//! The tests speak only through the trait: no SQL, and no assumption
//! beyond what the contract says (message sequence numbers are opaque,
//! increasing per instance: compared with what `load_work` returned, never
//! with literals). Times are plain [`Millis`](crate::model::Millis) the
//! tests pass in.
//!
//! The tests, by area: `lifecycle` (starts, deliveries, queries, purges,
//! component versions), `episodes` (commits, direct episodes, fencing,
//! reading work), `queues` (activities, timers), `staging` (large
//! commits), `entities` (entity rows and messages). To add one, write it in its area and add its name to the list
//! in [`store_conformance_tests!`](crate::store_conformance_tests); a unit
//! test fails while a `pub fn` of this folder is missing from the list.
//!
//! Enabled by the `conformance` feature: a backend takes `reprise-core`
//! with it as a dev-dependency.

use crate::model::{HistoryEntry, Instance, RuntimeStatus};
use crate::store::{
    CommitOutcome, EpisodeCommit, NewInstance, StartOutcome, Store, WorkItem, WorkRead,
};

mod entities;
mod episodes;
mod lifecycle;
mod queues;
mod staging;

pub use entities::*;
pub use episodes::*;
pub use lifecycle::*;
pub use queues::*;
pub use staging::*;

/// Every conformance test with its name, from the list
/// [`store_conformance_tests!`](crate::store_conformance_tests) expands:
/// for a harness that macro does not fit. Give each test a fresh, empty
/// store.
pub const ALL: &[(&str, Test)] = crate::store_conformance_tests!(@with @table);

/// A conformance test: run on a fresh, empty store, it panics if the store
/// breaks the contract.
pub type Test = fn(&dyn Store);

/// Expands to one `#[test] fn` per conformance test (named as the test),
/// each running it on a store of its own.
///
/// `$make_store` is an expression callable with no arguments (a function's
/// path, a closure) that returns `(guard, store)`: `store` is the fresh,
/// empty backend under test (anything that implements [`Store`]), and
/// `guard` whatever must outlive it (a temporary directory, a scratch
/// database to drop), dropped after the store.
///
/// ```rust,ignore
/// fn store() -> (tempfile::TempDir, SqliteStore) {
///     let dir = tempfile::tempdir().unwrap();
///     let store = SqliteStore::open(&dir.path().join("test.db")).unwrap();
///     (dir, store)
/// }
///
/// // In the module of the backend's tests (e.g. `tests::conformance`):
/// reprise_core::store_conformance_tests!(store);
/// ```
///
/// The arms starting with `@` are internal: the list of tests is written
/// once, here, and both these tests and [`ALL`] come from it.
#[macro_export]
macro_rules! store_conformance_tests {
    // The one list: hands it, as `[name, ...]`, to the arm `$($then)*`.
    (@with $($then:tt)*) => {
        $crate::store_conformance_tests! { $($then)* [
            // lifecycle.rs
            a_second_start_of_an_unfinished_instance_conflicts,
            a_finished_instance_restarts_as_a_new_generation_with_a_fresh_history,
            delivery_is_refused_to_finished_unknown_and_terminating_instances,
            a_refused_delivery_writes_nothing,
            queries_page_in_creation_order_and_bulk_purge_skips_live_instances,
            purge_refuses_an_unfinished_instance_and_removes_a_finished_one_with_its_messages,
            an_unparented_start_starts_or_leaves_a_live_instance_alone,
            a_component_version_is_kept_while_an_instance_may_run_on_it_and_then_collected,
            a_start_keeps_its_trace_and_a_new_start_replaces_it,
            instance_counts_follow_starts_status_changes_restarts_and_purges,
            queries_filter_by_name_page_newest_first_and_count_up_to_a_cap,
            component_versions_show_when_each_was_served_and_its_live_instances,
            // episodes.rs
            a_direct_first_episode_commits_with_its_start_or_the_start_is_queued,
            a_direct_episode_applies_only_to_the_state_it_was_planned_on,
            a_finishing_episode_that_missed_a_message_is_refused,
            continue_as_new_replaces_the_history_with_the_new_generation,
            work_is_read_in_batches_of_the_oldest_messages_unless_a_termination_is_queued,
            a_suspended_instances_full_batch_brings_the_resume_from_beyond_it,
            a_commit_planned_on_an_older_revision_is_refused_whatever_the_row_looks_like,
            a_new_start_under_a_finished_id_makes_a_commit_planned_on_the_old_generation_stale,
            a_commit_deletes_the_messages_it_names_and_no_other,
            // queues.rs
            activities_leased_in_their_commit_are_returned_and_left_to_no_one_else,
            leases_of_a_commit_whose_outcome_is_unknown_are_released_but_no_later_lease,
            an_activity_result_is_recorded_at_most_once_and_not_after_its_generation_ended,
            a_due_timer_fires_once_and_never_for_a_generation_that_ended,
            a_cancelled_timer_never_fires,
            counts_show_instances_by_status_and_what_waits,
            // staging.rs
            a_staged_commit_is_invisible_until_it_lands_and_its_effects_apply_once_in_batches,
            a_late_staging_never_changes_the_visible_history,
            // entities.rs
            a_message_for_an_entity_creates_its_row_and_it_is_not_an_instance,
            an_episodes_messages_reach_entities_in_order_and_an_entity_keeps_one_record,
            an_empty_entity_is_removed_unless_a_message_waits_for_it,
        ] }
    };
    (@tests $make_store:expr, [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                // Dropped in reverse order: the store, then its guard.
                let (_guard, store) = ($make_store)();
                $crate::conformance::$name(&store);
            }
        )*
    };
    (@table [$($name:ident),* $(,)?]) => {
        &[$((
            stringify!($name),
            $crate::conformance::$name as $crate::conformance::Test,
        )),*]
    };
    ($make_store:expr $(,)?) => {
        $crate::store_conformance_tests!(@with @tests $make_store,);
    };
}

/// A start of a `Counter` under `id` on version `sha256:v1` at time 1: the
/// instance the tests (and backends' own tests) work on.
pub fn new_instance(id: &str) -> NewInstance {
    NewInstance {
        id: id.into(),
        name: "Counter".into(),
        input: "0".into(),
        now: 1,
        parent: None,
        version: Some("sha256:v1".into()),
        trace: None,
    }
}

fn start(store: &dyn Store, new: &NewInstance) -> StartOutcome {
    store.start_instance(new, None).unwrap().0
}

/// What an episode of `id` would read now: its history and every queued
/// message (some must be queued).
fn work(store: &dyn Store, id: &str) -> WorkItem {
    store
        .load_work(id, WorkRead::ALL)
        .unwrap()
        .unwrap_or_else(|| panic!("instance {id} has nothing to do"))
}

/// The sequence numbers of the messages `work` read.
fn seqs(work: &WorkItem) -> Vec<i64> {
    work.messages.iter().map(|queued| queued.seq).collect()
}

/// An episode that moves `read` to `status` and adds one history entry,
/// consuming the messages `consumed`.
fn episode(read: &Instance, status: RuntimeStatus, consumed: Vec<i64>) -> EpisodeCommit {
    let mut updated = read.successor(read.updated_at + 1);
    updated.status = status;
    let entries = vec![HistoryEntry::OrchestratorStarted { timestamp: 2 }];
    EpisodeCommit::consuming(read.clone(), updated, entries, consumed)
}

/// Commits an episode that moves the instance to `status`, consuming everything read.
fn finish(store: &dyn Store, id: &str, status: RuntimeStatus) -> CommitOutcome {
    let work = work(store, id);
    store
        .commit_episode(&episode(&work.instance, status, seqs(&work)))
        .unwrap()
}

/// The length of `id`'s current history.
fn history_len(store: &dyn Store, id: &str) -> usize {
    store.instance_with_history(id).unwrap().unwrap().1.len()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `pub fn name(store: &dyn Store)` of this folder is in the list
    /// the macro expands (so no backend silently skips a new test), and
    /// nothing else is.
    #[test]
    fn every_conformance_test_is_listed() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conformance");
        let mut defined = Vec::new();
        for file in std::fs::read_dir(&folder).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("\npub fn ") {
                let signature = &text[at + "\npub fn ".len()..];
                let (name, rest) = signature.split_once('(').unwrap();
                let parameters = &rest[..rest.find(')').unwrap()];
                if parameters.trim().trim_end_matches(',') == "store: &dyn Store" {
                    defined.push(name.to_owned());
                }
            }
        }
        let listed: Vec<&str> = super::ALL.iter().map(|(name, _)| *name).collect();
        let unlisted: Vec<&String> = defined
            .iter()
            .filter(|name| !listed.contains(&name.as_str()))
            .collect();
        assert!(
            unlisted.is_empty(),
            "conformance tests missing from the list in `store_conformance_tests!` (core/src/conformance/mod.rs): {unlisted:?}"
        );
        assert_eq!(
            listed.len(),
            defined.len(),
            "a test is listed twice, or not written `pub fn name(store: &dyn Store)`"
        );
    }
}
