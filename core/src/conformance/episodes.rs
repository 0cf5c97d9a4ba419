//! Commits and direct episodes, fencing by revision, and reading work.

use super::{episode, finish, history_len, new_instance, seqs, start, work};
use crate::model::{HistoryEntry, Message, RuntimeStatus};
use crate::store::{
    Applied, CommitOutcome, DeliveryOutcome, DirectEpisode, FollowUp, HistoryChange, StartOutcome,
    Store, WorkRead,
};

/// A direct first episode, planned on [`NewInstance::started`], applies in
/// the start's transaction if it still fits; otherwise the start message
/// is queued as usual and nothing of the plan is written.
///
/// [`NewInstance::started`]: crate::store::NewInstance::started
pub fn a_direct_first_episode_commits_with_its_start_or_the_start_is_queued(store: &dyn Store) {
    let new = new_instance("a");
    let direct = DirectEpisode {
        commit: episode(&new.started(0), RuntimeStatus::Completed, vec![]),
        history_len: 0,
    };
    let (outcome, applied) = store.start_instance(&new, Some(direct.clone())).unwrap();
    assert_eq!(outcome, StartOutcome::Started);
    assert_eq!(applied, Applied::Directly(FollowUp::default()));
    let (instance, history) = store.instance_with_history("a").unwrap().unwrap();
    assert_eq!(instance.status, RuntimeStatus::Completed);
    assert_eq!(history.len(), 1);
    assert!(store.instances_with_messages().unwrap().is_empty());

    // Under the same ID again the generation is 1, not the planned 0: the
    // start is queued as usual and nothing of the plan is written.
    let (outcome, applied) = store.start_instance(&new, Some(direct)).unwrap();
    assert_eq!((outcome, applied), (StartOutcome::Started, Applied::Queued));
    let (instance, history) = store.instance_with_history("a").unwrap().unwrap();
    assert_eq!(
        (instance.status, instance.generation, history.len()),
        (RuntimeStatus::Pending, 1, 0)
    );
    assert_eq!(store.instances_with_messages().unwrap(), ["a"]);
}

/// A `DirectEpisode` applies only if the row's revision is `read`'s,
/// nothing is queued and the history has the planned length; otherwise
/// its message is queued.
pub fn a_direct_episode_applies_only_to_the_state_it_was_planned_on(store: &dyn Store) {
    start(store, &new_instance("a"));
    finish(store, "a", RuntimeStatus::Running);
    let running = store.instance("a").unwrap().unwrap();
    let event = Message::Event {
        name: "e".into(),
        payload: "1".into(),
        accepted_at: 3,
    };
    let direct = |history_len| DirectEpisode {
        commit: episode(&running, RuntimeStatus::Running, vec![]),
        history_len,
    };

    // A history length other than the stored one: queued, nothing applied.
    let (outcome, applied) = store.deliver("a", &event, Some(direct(5))).unwrap();
    assert_eq!(
        (outcome, applied),
        (DeliveryOutcome::Accepted, Applied::Queued)
    );
    assert_eq!(store.instance("a").unwrap().unwrap(), running);

    // Something queued before it: queued behind it, in order.
    let (_, applied) = store.deliver("a", &event, Some(direct(1))).unwrap();
    assert_eq!(applied, Applied::Queued);
    let queued = work(store, "a");
    assert_eq!(queued.messages.len(), 2);
    assert_eq!(queued.history.len(), 1);

    // The state it was planned on: applied, nothing queued by it.
    store
        .commit_episode(&episode(&running, RuntimeStatus::Running, seqs(&queued)))
        .unwrap();
    let now_running = store.instance("a").unwrap().unwrap();
    let planned = DirectEpisode {
        commit: episode(&now_running, RuntimeStatus::Running, vec![]),
        history_len: 2,
    };
    let (_, applied) = store.deliver("a", &event, Some(planned)).unwrap();
    assert_eq!(applied, Applied::Directly(FollowUp::default()));
    assert_eq!(history_len(store, "a"), 3);
    assert!(store.instances_with_messages().unwrap().is_empty());
}

/// A commit that finishes the instance while messages it did not read are
/// queued is refused (`LateMessages`) and writes nothing.
pub fn a_finishing_episode_that_missed_a_message_is_refused(store: &dyn Store) {
    start(store, &new_instance("a"));
    let read = work(store, "a");
    // An event lands after the episode read the inbox.
    store.raise_event("a", "e", "1", 1).unwrap();

    let commit = episode(&read.instance, RuntimeStatus::Completed, seqs(&read));
    assert_eq!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::LateMessages
    );
    // Nothing was written: the instance is still pending with both messages.
    assert_eq!(
        store.instance("a").unwrap().unwrap().status,
        RuntimeStatus::Pending
    );
    assert_eq!(work(store, "a").messages.len(), 2);

    // A non-finishing episode commits and leaves the late message queued.
    let mut running = commit.clone();
    running.updated.status = RuntimeStatus::Running;
    assert_eq!(
        store.commit_episode(&running).unwrap(),
        CommitOutcome::Committed(FollowUp::default())
    );
    assert_eq!(work(store, "a").messages.len(), 1);
    // The episode's view is now stale.
    assert_eq!(
        store.commit_episode(&running).unwrap(),
        CommitOutcome::Stale
    );
}

/// `HistoryChange::Replace`: the new generation's history replaces the old.
pub fn continue_as_new_replaces_the_history_with_the_new_generation(store: &dyn Store) {
    start(store, &new_instance("a"));
    let read = work(store, "a");
    let entries = vec![
        HistoryEntry::ExecutionStarted {
            timestamp: 3,
            name: "Counter".into(),
            input: "7".into(),
        },
        HistoryEntry::OrchestratorStarted { timestamp: 3 },
    ];
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.updated.generation = 7;
    commit.updated.input = "7".into();
    commit.history = HistoryChange::Replace(entries.clone());
    store.commit_episode(&commit).unwrap();
    assert_eq!(
        store.instance_with_history("a").unwrap().unwrap().1,
        entries
    );
    assert_eq!(store.instance("a").unwrap().unwrap().input, "7");
}

/// `load_work` reads the oldest `max_messages` queued messages, but all of
/// them while a termination is queued; finishing clears "terminating".
pub fn work_is_read_in_batches_of_the_oldest_messages_unless_a_termination_is_queued(
    store: &dyn Store,
) {
    start(store, &new_instance("a"));
    for n in 0..10 {
        store.raise_event("a", "e", &n.to_string(), 1).unwrap();
    }
    let batch = WorkRead {
        history: false,
        max_messages: 4,
    };
    let read = store.load_work("a", batch).unwrap().unwrap();
    let oldest: Vec<i64> = seqs(&work(store, "a")).into_iter().take(4).collect();
    assert_eq!(seqs(&read), oldest);
    assert!(read.history.is_empty());
    assert_eq!(read.history_len, 0);

    store.request_termination("a", "r").unwrap();
    let read = store.load_work("a", batch).unwrap().unwrap();
    assert_eq!(
        read.messages.len(),
        12,
        "the start, 10 events, the termination"
    );

    // Finishing consumes the inbox and clears the flag: a rewind makes a
    // failed instance live again, and it accepts events.
    assert_eq!(
        store.raise_event("a", "e", "late", 1).unwrap(),
        DeliveryOutcome::Terminating
    );
    finish(store, "a", RuntimeStatus::Failed);
    let failed = store.instance("a").unwrap().unwrap();
    let mut rewind = episode(&failed, RuntimeStatus::Running, vec![]);
    rewind.requeued = vec![Message::Rewind { reason: "r".into() }];
    assert!(matches!(
        store.commit_episode(&rewind).unwrap(),
        CommitOutcome::Committed(_)
    ));
    assert_eq!(
        store.raise_event("a", "e", "1", 1).unwrap(),
        DeliveryOutcome::Accepted
    );
    // So does a new start.
    finish(store, "a", RuntimeStatus::Failed);
    start(store, &new_instance("a"));
    assert_eq!(
        store.raise_event("a", "e", "1", 1).unwrap(),
        DeliveryOutcome::Accepted
    );
}

/// A suspended instance's full batch is followed by the messages beyond it
/// that act while suspended, up to the first that ends the suspension (a
/// resume or a termination), not by the events held in between nor by
/// anything after it; a batch that is not full has everything already.
pub fn a_suspended_instances_full_batch_brings_the_resume_from_beyond_it(store: &dyn Store) {
    suspended(store, "a");
    for n in 0..10 {
        store.raise_event("a", "e", &n.to_string(), 1).unwrap();
    }
    let batch = WorkRead {
        history: false,
        max_messages: 4,
    };
    let read = store.load_work("a", batch).unwrap().unwrap();
    assert_eq!(read.messages.len(), 4, "nothing ends the suspension yet");

    let resume = |reason: &str| Message::Resume {
        reason: reason.into(),
    };
    store.deliver("a", &a_suspension(), None).unwrap();
    let read = store.load_work("a", batch).unwrap().unwrap();
    assert_eq!(read.messages.len(), 4, "nothing ends the suspension yet");
    store.deliver("a", &resume("first"), None).unwrap();
    store.raise_event("a", "e", "late", 1).unwrap();
    store.deliver("a", &resume("second"), None).unwrap();
    let all = seqs(&work(store, "a"));
    assert_eq!(all.len(), 14);
    // What acts while suspended, in order, up to the first resume.
    let read = store.load_work("a", batch).unwrap().unwrap();
    assert_eq!(seqs(&read), [&all[..4], &all[10..12]].concat());
    assert_eq!(read.messages[4].message, a_suspension());
    assert_eq!(read.messages[5].message, resume("first"));

    let whole = WorkRead {
        history: false,
        max_messages: 20,
    };
    assert_eq!(seqs(&store.load_work("a", whole).unwrap().unwrap()), all);

    // A batch that ends the suspension itself gets nothing from beyond it
    // (its events after the resume come first); one that only suspends
    // again does.
    for (id, second) in [("ending", resume("early")), ("again", a_suspension())] {
        suspended(store, id);
        store.raise_event(id, "e", "0", 1).unwrap();
        store.deliver(id, &second, None).unwrap();
        for n in 1..5 {
            store.raise_event(id, "e", &n.to_string(), 1).unwrap();
        }
        store.deliver(id, &resume("late"), None).unwrap();
        let read = store.load_work(id, batch).unwrap().unwrap();
        let beyond = read.messages.get(4).map(|queued| &queued.message);
        match second.ends_suspension() {
            true => assert_eq!(beyond, None, "{id}"),
            false => assert_eq!(beyond, Some(&resume("late")), "{id}"),
        }
    }
}

/// Starts `id` and commits the episode that suspends it.
fn suspended(store: &dyn Store, id: &str) {
    start(store, &new_instance(id));
    let started = work(store, id);
    let suspend = episode(&started.instance, RuntimeStatus::Suspended, seqs(&started));
    assert!(matches!(
        store.commit_episode(&suspend).unwrap(),
        CommitOutcome::Committed(_)
    ));
}

fn a_suspension() -> Message {
    Message::Suspend { reason: "r".into() }
}

/// Every commit moves the revision by one, and one planned on another
/// revision is refused as `Stale`, whatever the rest of the row says.
pub fn a_commit_planned_on_an_older_revision_is_refused_whatever_the_row_looks_like(
    store: &dyn Store,
) {
    start(store, &new_instance("a"));
    let read = work(store, "a");
    assert_eq!(read.instance.revision, 0);
    let through = seqs(&read);
    let first = episode(&read.instance, RuntimeStatus::Running, through.clone());
    assert!(matches!(
        store.commit_episode(&first).unwrap(),
        CommitOutcome::Committed(_)
    ));
    let now = store.instance("a").unwrap().unwrap();
    assert_eq!(now.revision, 1);

    // Everything as the row is now, but planned on revision 0: a host
    // that missed the first commit (its clock, its copy of the row agree).
    let mut stale_read = now.clone();
    stale_read.revision = 0;
    let stale = episode(&stale_read, RuntimeStatus::Completed, through);
    assert_eq!(store.commit_episode(&stale).unwrap(), CommitOutcome::Stale);
    assert_eq!(
        store.instance("a").unwrap().unwrap(),
        now,
        "nothing written"
    );
}

/// A new start under a finished ID moves the revision on: a commit planned
/// on the finished generation (a rewind racing the start, say) is `Stale`
/// and writes nothing.
pub fn a_new_start_under_a_finished_id_makes_a_commit_planned_on_the_old_generation_stale(
    store: &dyn Store,
) {
    start(store, &new_instance("a"));
    finish(store, "a", RuntimeStatus::Failed);
    let failed = store.instance("a").unwrap().unwrap();
    assert_eq!(start(store, &new_instance("a")), StartOutcome::Started);
    let restarted = store.instance("a").unwrap().unwrap();
    assert!(
        restarted.revision > failed.revision,
        "revision {} after a new start, {} before",
        restarted.revision,
        failed.revision
    );

    let mut rewind = episode(&failed, RuntimeStatus::Running, vec![]);
    rewind.requeued = vec![Message::Rewind { reason: "r".into() }];
    assert_eq!(store.commit_episode(&rewind).unwrap(), CommitOutcome::Stale);
    let late = episode(&failed, RuntimeStatus::Completed, vec![]);
    assert_eq!(store.commit_episode(&late).unwrap(), CommitOutcome::Stale);

    assert_eq!(store.instance("a").unwrap().unwrap(), restarted);
    let now = work(store, "a");
    assert_eq!(now.history_len, 0);
    let messages: Vec<Message> = now.messages.into_iter().map(|q| q.message).collect();
    assert_eq!(messages, [Message::Start], "only the new start's");
}

/// `commit.consumed` names the messages a commit deletes, one by one: a
/// message it skips (one it did not read, as far as the store knows)
/// stays queued. A backend may delete only those named, or refuse the
/// commit whole (SQLite deletes a prefix and refuses one with a gap).
pub fn a_commit_deletes_the_messages_it_names_and_no_other(store: &dyn Store) {
    start(store, &new_instance("a"));
    store.raise_event("a", "e", "1", 1).unwrap();
    let read = work(store, "a");
    let [start_message, event] = seqs(&read)[..] else {
        panic!("two messages queued");
    };
    let skipping = episode(&read.instance, RuntimeStatus::Running, vec![event]);
    match store.commit_episode(&skipping) {
        Ok(CommitOutcome::Committed(_)) => {
            assert_eq!(store.queued_messages("a").unwrap(), [start_message]);
        }
        Ok(refused) => panic!("a commit of the current revision was refused: {refused:?}"),
        Err(_) => {
            assert_eq!(store.queued_messages("a").unwrap(), [start_message, event]);
            assert_eq!(store.instance("a").unwrap().unwrap(), read.instance);
            let first = episode(&read.instance, RuntimeStatus::Running, vec![start_message]);
            assert!(matches!(
                store.commit_episode(&first).unwrap(),
                CommitOutcome::Committed(_)
            ));
            assert_eq!(store.queued_messages("a").unwrap(), [event]);
        }
    }
}
