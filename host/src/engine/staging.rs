//! Large commits in short transactions. An episode that adds thousands of
//! history entries or effects (a fan-out of 100,000 activities, a storm of
//! sent events) would hold the single writer for a second in one
//! transaction, and every other instance's request would wait behind it.
//! Instead its rows are written ahead in batches, invisibly
//! ([`Store::stage_history`], [`Store::stage_effects`]); the commit itself
//! is short and makes the history visible; its effects (children, sent
//! events, activities, timers) then apply a batch per transaction
//! ([`Store::apply_pending_effects`]), before the instance's next episode.
//! Other instances' transactions interleave with every batch.

use crate::store::{EpisodeCommit, HistoryChange, Staging, Store};

/// Rows (history entries and effects) beyond which a commit is staged.
const STAGE_ABOVE: usize = 4096;

/// Rows written, or effects applied, per transaction.
pub(super) const BATCH: usize = 512;

/// Writes `commit`'s rows ahead and marks it staged, if it is large enough
/// to need it and can be staged. `history_from` is the length of the
/// history the episode read.
pub(super) fn stage_if_large(
    store: &dyn Store,
    commit: &mut EpisodeCommit,
    history_from: usize,
) -> anyhow::Result<()> {
    if !too_large(commit) || !stageable(commit) {
        return Ok(());
    }
    let effects = commit.effects();
    let history_from = match commit.history {
        HistoryChange::Append(_) => history_from,
        HistoryChange::Replace(_) => 0,
    };
    let id = commit.updated.id.clone();
    let generation = commit.updated.generation;
    for (index, entries) in commit.new_entries().chunks(BATCH).enumerate() {
        let first = history_from + index * BATCH;
        store.stage_history(&id, generation, first, entries.to_vec())?;
    }
    let token = uuid::Uuid::new_v4().as_u64_pair().0 as i64;
    for (index, batch) in effects.chunks(BATCH).enumerate() {
        store.stage_effects(&id, token, index * BATCH, batch.to_vec())?;
    }
    commit.staging = Some(Staging { token });
    Ok(())
}

/// Whether `commit` has more rows than one short transaction should write.
pub(super) fn too_large(commit: &EpisodeCommit) -> bool {
    let effects = commit.children.len()
        + commit.sent_events.len()
        + commit.messages.len()
        + commit.activities.len()
        + commit.timers.len();
    commit.new_entries().len() + effects > STAGE_ABOVE
}

/// Whether staged rows stay invisible until the commit: new entries after
/// the current ones, or a new generation's (a rewind's replacement of the
/// same generation is not staged; nor are its requeued messages).
fn stageable(commit: &EpisodeCommit) -> bool {
    let new_generation = commit.updated.generation != commit.read.generation;
    commit.requeued.is_empty()
        && match commit.history {
            HistoryChange::Append(_) => !new_generation,
            HistoryChange::Replace(_) => new_generation,
        }
}

/// Applies every effect pending for `id`, a batch per transaction; calls
/// `notify` with the instances each batch sent messages to (so they start
/// while the rest is applied). True if there were any.
pub(super) fn drain_effects(
    store: &dyn Store,
    id: &str,
    mut notify: impl FnMut(Vec<String>),
) -> anyhow::Result<bool> {
    let mut any = false;
    while let Some(follow_up) = store.apply_pending_effects(id, BATCH)? {
        any = true;
        notify(follow_up.notify);
    }
    Ok(any)
}
