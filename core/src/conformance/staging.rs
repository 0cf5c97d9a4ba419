//! Staged commits: written ahead invisibly, their effects applied in
//! batches once they land.

use super::{episode, new_instance, seqs, start, work};
use crate::model::{HistoryEntry, Instance, Message, RuntimeStatus};
use crate::store::{
    Applied, CommitOutcome, DeliveryOutcome, DirectEpisode, EpisodeCommit, HistoryChange, Staging,
    Store, WorkRead,
};

/// A commit of `read` (whose history is empty) staged with `token`: one
/// entry appended and one event sent to `target` per payload.
fn staged_commit(
    read: &Instance,
    consumed: Vec<i64>,
    token: i64,
    target: &str,
    payloads: std::ops::Range<usize>,
) -> EpisodeCommit {
    let mut commit = episode(read, RuntimeStatus::Running, consumed);
    let entries: Vec<HistoryEntry> = payloads
        .clone()
        .map(|n| HistoryEntry::EventSent {
            timestamp: 2,
            instance_id: target.to_owned(),
            name: "e".to_owned(),
            payload: n.to_string(),
        })
        .collect();
    commit.history = HistoryChange::Append(entries);
    commit.sent_events = payloads
        .map(|n| (target.to_owned(), "e".to_owned(), n.to_string()))
        .collect();
    commit.staging = Some(Staging { token });
    commit
}

/// Writes `commit`'s entries and effects ahead, `batch` per call.
fn stage(store: &dyn Store, commit: &EpisodeCommit, batch: usize) {
    let staging = commit.staging.unwrap();
    let id = &commit.updated.id;
    for (index, entries) in commit.new_entries().chunks(batch).enumerate() {
        let first = index * batch;
        store
            .stage_history(id, commit.updated.generation, first, entries.to_vec())
            .unwrap();
    }
    for (index, effects) in commit.effects().chunks(batch).enumerate() {
        store
            .stage_effects(id, staging.token, index * batch, effects.to_vec())
            .unwrap();
    }
}

/// The payloads of the events queued for `id`, oldest first.
fn payloads_queued(store: &dyn Store, id: &str) -> Vec<String> {
    let Some(work) = store.load_work(id, WorkRead::ALL).unwrap() else {
        return Vec::new();
    };
    work.messages
        .into_iter()
        .filter_map(|queued| match queued.message {
            Message::Event { payload, .. } => Some(payload),
            _ => None,
        })
        .collect()
}

/// Staged entries and effects are invisible until their commit lands (an
/// abandoned attempt's are overwritten); then the history is whole at once
/// and the effects pending: start-up finds the instance, no direct episode
/// applies to it, and `apply_pending_effects` applies them a batch per
/// call, each once, in order.
pub fn a_staged_commit_is_invisible_until_it_lands_and_its_effects_apply_once_in_batches(
    store: &dyn Store,
) {
    start(store, &new_instance("sender"));
    start(store, &new_instance("target"));
    let read = work(store, "sender");
    let through = seqs(&read);

    // An abandoned attempt (a host that died while staging), then the real one.
    let abandoned = staged_commit(&read.instance, through.clone(), 1, "target", 100..110);
    stage(store, &abandoned, 4);
    let commit = staged_commit(&read.instance, through, 2, "target", 0..10);
    stage(store, &commit, 4);
    let (_, history) = store.instance_with_history("sender").unwrap().unwrap();
    assert!(history.is_empty(), "staged entries are invisible");
    assert!(payloads_queued(store, "target").is_empty());
    assert!(!work(store, "sender").effects_pending);

    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));
    let (row, history) = store.instance_with_history("sender").unwrap().unwrap();
    assert_eq!(history, commit.new_entries());
    let pending = work(store, "sender");
    assert!(pending.effects_pending && pending.messages.is_empty());
    assert!(
        store
            .instances_with_messages()
            .unwrap()
            .contains(&"sender".to_owned())
    );

    // An episode planned on the row as it is now waits for the effects.
    let direct = DirectEpisode {
        commit: episode(&row, RuntimeStatus::Running, vec![]),
        history_len: history.len(),
    };
    let event = Message::Event {
        name: "e".into(),
        payload: "direct".into(),
        accepted_at: 3,
    };
    let delivered = store.deliver("sender", &event, Some(direct)).unwrap();
    assert_eq!(delivered, (DeliveryOutcome::Accepted, Applied::Queued));

    let first = store.apply_pending_effects("sender", 4).unwrap().unwrap();
    assert_eq!(first.notify, ["target"]);
    while store.apply_pending_effects("sender", 4).unwrap().is_some() {}
    let expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    assert_eq!(
        payloads_queued(store, "target"),
        expected,
        "each once, in order"
    );
    let after = work(store, "sender");
    assert!(!after.effects_pending);
    assert_eq!(payloads_queued(store, "sender"), ["direct"]);
}

/// A host that lost an instance may stage late, after the new owner's
/// commit landed: its entries never replace the visible history (those
/// beyond it stay invisible, for the next commit to write over).
pub fn a_late_staging_never_changes_the_visible_history(store: &dyn Store) {
    start(store, &new_instance("sender"));
    start(store, &new_instance("target"));
    let read = work(store, "sender");
    let commit = staged_commit(&read.instance, seqs(&read), 1, "target", 0..10);
    stage(store, &commit, 4);
    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));

    let late = staged_commit(&read.instance, Vec::new(), 2, "target", 100..110);
    let generation = late.updated.generation;
    store
        .stage_history("sender", generation, 5, late.new_entries().to_vec())
        .unwrap();
    let (_, history) = store.instance_with_history("sender").unwrap().unwrap();
    assert_eq!(history, commit.new_entries());
}
