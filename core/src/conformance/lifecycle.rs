//! Starts, deliveries, queries, purges and component versions.

use super::{episode, finish, history_len, new_instance, seqs, start, work};
use crate::model::{Message, Millis, ParentTask, RuntimeStatus};
use crate::store::{
    CommitOutcome, ComponentVersion, DeliveryOutcome, DirectEpisode, FollowUp, InstanceFilter,
    NewInstance, PageCursor, PageOrder, PurgeOutcome, StartOutcome, Store, WorkRead,
};

/// `start_instance` checks that no unfinished instance holds the ID.
pub fn a_second_start_of_an_unfinished_instance_conflicts(store: &dyn Store) {
    assert_eq!(start(store, &new_instance("a")), StartOutcome::Started);
    assert_eq!(
        start(store, &new_instance("a")),
        StartOutcome::Conflict(RuntimeStatus::Pending)
    );
}

/// A new generation under a finished ID resets the row: history length 0.
pub fn a_finished_instance_restarts_as_a_new_generation_with_a_fresh_history(store: &dyn Store) {
    start(store, &new_instance("a"));
    assert_eq!(
        finish(store, "a", RuntimeStatus::Completed),
        CommitOutcome::Committed(FollowUp::default())
    );
    assert_eq!(history_len(store, "a"), 1);

    assert_eq!(start(store, &new_instance("a")), StartOutcome::Started);
    let instance = store.instance("a").unwrap().unwrap();
    assert_eq!(
        (instance.status, instance.generation),
        (RuntimeStatus::Pending, 1)
    );
    assert_eq!(history_len(store, "a"), 0);
}

/// `deliver` is refused for an unknown, finished or terminating instance.
pub fn delivery_is_refused_to_finished_unknown_and_terminating_instances(store: &dyn Store) {
    assert_eq!(
        store.raise_event("x", "e", "1", 1).unwrap(),
        DeliveryOutcome::NotFound
    );

    start(store, &new_instance("a"));
    assert_eq!(
        store.raise_event("a", "e", "1", 1).unwrap(),
        DeliveryOutcome::Accepted
    );
    assert_eq!(
        store.request_termination("a", "r").unwrap(),
        DeliveryOutcome::Accepted
    );
    assert_eq!(
        store.raise_event("a", "e", "2", 1).unwrap(),
        DeliveryOutcome::Terminating
    );

    assert_eq!(
        finish(store, "a", RuntimeStatus::Terminated),
        CommitOutcome::Committed(FollowUp::default())
    );
    assert_eq!(
        store.raise_event("a", "e", "3", 1).unwrap(),
        DeliveryOutcome::Finished(RuntimeStatus::Terminated)
    );
    assert!(store.instances_with_messages().unwrap().is_empty());
}

/// A refused delivery writes nothing: neither the message nor the direct
/// episode offered with it.
pub fn a_refused_delivery_writes_nothing(store: &dyn Store) {
    let event = Message::Event {
        name: "e".into(),
        payload: "1".into(),
        accepted_at: 3,
    };

    // Unknown: no row, no message.
    let (outcome, _) = store.deliver("x", &event, None).unwrap();
    assert_eq!(outcome, DeliveryOutcome::NotFound);
    assert_eq!(store.instance("x").unwrap(), None);
    assert!(store.queued_messages("x").unwrap().is_empty());
    assert!(store.load_work("x", WorkRead::ALL).unwrap().is_none());

    // Finished: even an episode planned on its very row is not applied.
    start(store, &new_instance("a"));
    finish(store, "a", RuntimeStatus::Completed);
    let finished = store.instance("a").unwrap().unwrap();
    let direct = DirectEpisode {
        commit: episode(&finished, RuntimeStatus::Running, vec![]),
        history_len: 1,
    };
    let (outcome, _) = store.deliver("a", &event, Some(direct)).unwrap();
    assert_eq!(outcome, DeliveryOutcome::Finished(RuntimeStatus::Completed));
    assert_eq!(store.instance("a").unwrap().unwrap(), finished);
    assert_eq!(history_len(store, "a"), 1);
    assert!(store.queued_messages("a").unwrap().is_empty());
    assert!(store.load_work("a", WorkRead::ALL).unwrap().is_none());

    // Terminating: nothing is queued behind the termination.
    start(store, &new_instance("b"));
    store.request_termination("b", "r").unwrap();
    let (row, queued) = (
        store.instance("b").unwrap().unwrap(),
        store.queued_messages("b").unwrap(),
    );
    let (outcome, _) = store.deliver("b", &event, None).unwrap();
    assert_eq!(outcome, DeliveryOutcome::Terminating);
    assert_eq!(store.instance("b").unwrap().unwrap(), row);
    assert_eq!(store.queued_messages("b").unwrap(), queued);

    assert_eq!(store.instances_with_messages().unwrap(), ["b"]);
}

/// Queries are ordered by creation time, then ID; a bulk purge deletes
/// finished instances only.
pub fn queries_page_in_creation_order_and_bulk_purge_skips_live_instances(store: &dyn Store) {
    for (n, id) in ["b", "a", "c"].into_iter().enumerate() {
        let mut new = new_instance(id);
        new.now = 10 + n as Millis;
        start(store, &new);
    }
    finish(store, "a", RuntimeStatus::Completed);
    let first = store
        .query_instances(&InstanceFilter::default(), None, 2)
        .unwrap();
    let ids: Vec<&str> = first.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    let cursor = PageCursor {
        created_at: first[1].created_at,
        instance_id: first[1].id.clone(),
    };
    let rest = store
        .query_instances(&InstanceFilter::default(), Some(&cursor), 2)
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, "c");

    let everything = InstanceFilter::default();
    assert_eq!(store.purge_finished(&everything, 10).unwrap(), 1);
    assert!(store.instance("a").unwrap().is_none());
    assert!(store.instance("b").unwrap().is_some());
}

/// `purge` deletes a finished instance with everything stored for it (its
/// history, messages that reached it after it finished): its ID is then
/// new again. An unfinished one it leaves alone.
pub fn purge_refuses_an_unfinished_instance_and_removes_a_finished_one_with_its_messages(
    store: &dyn Store,
) {
    assert_eq!(store.purge("x").unwrap(), PurgeOutcome::NotFound);
    start(store, &new_instance("parent"));
    assert_eq!(
        store.purge("parent").unwrap(),
        PurgeOutcome::NotFinished(RuntimeStatus::Pending)
    );
    assert_eq!(store.queued_messages("parent").unwrap().len(), 1);

    // The parent completes without waiting for its child; when the child
    // completes, the parent is told, finished as it is.
    let read = work(store, "parent");
    let mut commit = episode(&read.instance, RuntimeStatus::Completed, seqs(&read));
    commit.children = vec![Ok(NewInstance {
        parent: Some(ParentTask {
            instance_id: "parent".into(),
            generation: 0,
            task_id: 1,
        }),
        ..new_instance("child")
    })];
    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));
    finish(store, "child", RuntimeStatus::Completed);

    assert_eq!(store.purge("parent").unwrap(), PurgeOutcome::Purged);
    assert_eq!(store.instance("parent").unwrap(), None);
    assert!(store.instance_with_history("parent").unwrap().is_none());
    assert!(store.queued_messages("parent").unwrap().is_empty());
    assert!(store.load_work("parent", WorkRead::ALL).unwrap().is_none());
    assert!(
        !store
            .instances_with_messages()
            .unwrap()
            .contains(&"parent".to_owned())
    );
    assert_eq!(store.purge("parent").unwrap(), PurgeOutcome::NotFound);
    assert!(
        store.instance("child").unwrap().is_some(),
        "only the parent"
    );

    // Started again, it is a new ID's first generation, with only its start.
    start(store, &new_instance("parent"));
    let again = work(store, "parent");
    assert_eq!((again.instance.generation, again.history_len), (0, 0));
    let messages: Vec<Message> = again.messages.into_iter().map(|q| q.message).collect();
    assert_eq!(messages, [Message::Start]);
}

/// An instance an episode starts with no parent (an orchestrator's
/// fire-and-forget start) starts like a child; if its ID is taken by any
/// instance, finished or not, nothing happens and nobody is told.
pub fn an_unparented_start_starts_or_leaves_a_live_instance_alone(store: &dyn Store) {
    start(store, &new_instance("taken"));
    start(store, &new_instance("done"));
    finish(store, "done", RuntimeStatus::Completed);
    start(store, &new_instance("starter"));
    let read = work(store, "starter");
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.children = vec![
        Ok(new_instance("fresh")),
        Ok(new_instance("taken")),
        Ok(new_instance("done")),
    ];
    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));

    let fresh = store.instance("fresh").unwrap().expect("started");
    assert_eq!((fresh.status, fresh.parent), (RuntimeStatus::Pending, None));
    let taken = work(store, "taken");
    let messages: Vec<Message> = taken.messages.into_iter().map(|q| q.message).collect();
    assert_eq!(messages, [Message::Start], "left alone");
    let done = store.instance("done").unwrap().expect("kept");
    assert_eq!(
        (done.status, done.generation),
        (RuntimeStatus::Completed, 0),
        "a finished one is not started again"
    );
    assert!(store.queued_messages("starter").unwrap().is_empty());
}

/// Component versions: stored once, retired when no longer served, and
/// collected only once retired long enough and no instance may run on them
/// again (one not finished, or failed, since a rewind replays it).
pub fn a_component_version_is_kept_while_an_instance_may_run_on_it_and_then_collected(
    store: &dyn Store,
) {
    let (v1, v2) = ("sha256:v1".to_owned(), "sha256:v2".to_owned());
    let stored_v1 = [(v1.clone(), b"one".to_vec())];
    let stored_v2 = [(v2.clone(), b"two".to_vec())];
    let (only_v1, only_v2, both) = ([v1.clone()], [v2.clone()], [v1.clone(), v2.clone()]);
    store.record_components(&stored_v1, &only_v1, 10).unwrap();
    start(store, &new_instance("on-v1"));

    // v2 replaces v1 at time 20; v1 is retired but "on-v1" still runs on it.
    store.record_components(&stored_v2, &only_v2, 20).unwrap();
    assert_eq!(store.collect_components(100).unwrap(), Vec::<String>::new());
    assert_eq!(store.component(&v1).unwrap(), Some(b"one".to_vec()));

    // Failed instances can be rewound, so they still need their version.
    finish(store, "on-v1", RuntimeStatus::Failed);
    assert_eq!(store.collect_components(100).unwrap(), Vec::<String>::new());
    start(store, &new_instance("on-v1"));
    finish(store, "on-v1", RuntimeStatus::Completed);
    // Not before it has been retired long enough; never the served one.
    assert_eq!(store.collect_components(19).unwrap(), Vec::<String>::new());
    assert_eq!(store.collect_components(100).unwrap(), only_v1);
    assert_eq!(store.component(&v1).unwrap(), None);
    assert_eq!(store.component(&v2).unwrap(), Some(b"two".to_vec()));

    // A version served again is no longer retired; one that stays retired
    // keeps the time it was first retired.
    store.record_components(&stored_v1, &both, 30).unwrap();
    store.record_components(&[], &only_v1, 40).unwrap();
    assert_eq!(store.collect_components(39).unwrap(), Vec::<String>::new());
    store.record_components(&[], &only_v1, 50).unwrap();
    assert_eq!(store.collect_components(40).unwrap(), only_v2);
}

/// The store keeps an instance's trace context as the start gave it, for
/// a child too; a new start under a finished ID replaces it.
pub fn a_start_keeps_its_trace_and_a_new_start_replaces_it(store: &dyn Store) {
    let trace = |id: &str| store.instance(id).unwrap().unwrap().trace;
    let traced = |id: &str, trace: &str| NewInstance {
        trace: Some(trace.into()),
        ..new_instance(id)
    };
    start(store, &traced("a", "first"));
    assert_eq!(trace("a").as_deref(), Some("first"));
    let read = work(store, "a");
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.children = vec![Ok(NewInstance {
        parent: Some(ParentTask {
            instance_id: "a".into(),
            generation: 0,
            task_id: 1,
        }),
        ..traced("a-child", "child")
    })];
    let CommitOutcome::Committed(_) = store.commit_episode(&commit).unwrap() else {
        panic!("the episode was refused");
    };
    assert_eq!(trace("a-child").as_deref(), Some("child"));
    assert_eq!(trace("a").as_deref(), Some("first"), "a commit keeps it");

    finish(store, "a-child", RuntimeStatus::Completed);
    assert_eq!(
        start(store, &traced("a-child", "again")),
        StartOutcome::Started
    );
    assert_eq!(trace("a-child").as_deref(), Some("again"));
    start(store, &new_instance("untraced"));
    assert_eq!(trace("untraced"), None);
}

/// The kept counts of instances by status follow every start, status
/// change, new start under a finished ID and purge, and are what `counts`
/// reports.
pub fn instance_counts_follow_starts_status_changes_restarts_and_purges(store: &dyn Store) {
    let counts = || {
        let mut counts = store.instance_counts().unwrap();
        counts.sort_by_key(|(status, _)| status.as_str());
        counts
    };
    assert_eq!(counts(), []);
    start(store, &new_instance("a"));
    start(store, &new_instance("b"));
    assert_eq!(counts(), [(RuntimeStatus::Pending, 2)]);
    finish(store, "a", RuntimeStatus::Completed);
    assert_eq!(
        counts(),
        [(RuntimeStatus::Completed, 1), (RuntimeStatus::Pending, 1)]
    );
    start(store, &new_instance("a"));
    assert_eq!(counts(), [(RuntimeStatus::Pending, 2)]);
    finish(store, "a", RuntimeStatus::Failed);
    assert_eq!(store.purge("a").unwrap(), PurgeOutcome::Purged);
    finish(store, "b", RuntimeStatus::Terminated);
    assert_eq!(counts(), [(RuntimeStatus::Terminated, 1)]);
    assert_eq!(
        store
            .purge_finished(&InstanceFilter::default(), 10)
            .unwrap(),
        1
    );
    assert_eq!(counts(), []);
    start(store, &new_instance("c"));
    assert_eq!(store.counts(0).unwrap().instances, counts());
}

/// Queries narrow by orchestrator name and page newest first as well as
/// oldest first; a count stops at its cap.
pub fn queries_filter_by_name_page_newest_first_and_count_up_to_a_cap(store: &dyn Store) {
    for (n, (id, name)) in [("b", "Counter"), ("a", "Counter"), ("c", "Other")]
        .into_iter()
        .enumerate()
    {
        let mut new = new_instance(id);
        new.name = name.into();
        new.now = 10 + n as Millis;
        start(store, &new);
    }
    let ids = |filter: &InstanceFilter, after: Option<&PageCursor>, limit| {
        let page = store.query_instances(filter, after, limit).unwrap();
        page.into_iter().map(|i| i.id).collect::<Vec<_>>()
    };
    let counters = InstanceFilter {
        name: Some("Counter".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(ids(&counters, None, 10), ["b", "a"]);
    let newest = InstanceFilter {
        order: PageOrder::NewestFirst,
        ..InstanceFilter::default()
    };
    assert_eq!(ids(&newest, None, 2), ["c", "a"]);
    let a = store.instance("a").unwrap().unwrap();
    let cursor = PageCursor {
        created_at: a.created_at,
        instance_id: a.id,
    };
    assert_eq!(ids(&newest, Some(&cursor), 2), ["b"]);

    let everything = InstanceFilter::default();
    assert_eq!(store.count_instances(&everything, 10).unwrap(), 3);
    assert_eq!(store.count_instances(&everything, 2).unwrap(), 2);
    assert_eq!(store.count_instances(&counters, 10).unwrap(), 2);
    let pending_others = InstanceFilter {
        name: Some("Other".into()),
        statuses: vec![RuntimeStatus::Pending],
        ..InstanceFilter::default()
    };
    assert_eq!(store.count_instances(&pending_others, 10).unwrap(), 1);
}

/// `component_versions` lists every stored version, oldest first, with
/// when it was stored and retired and the unfinished instances on it.
pub fn component_versions_show_when_each_was_served_and_its_live_instances(store: &dyn Store) {
    let (v1, v2) = ("sha256:v1".to_owned(), "sha256:v2".to_owned());
    store
        .record_components(
            &[(v1.clone(), b"one".to_vec())],
            std::slice::from_ref(&v1),
            10,
        )
        .unwrap();
    start(store, &new_instance("live"));
    start(store, &new_instance("done"));
    finish(store, "done", RuntimeStatus::Completed);
    store
        .record_components(
            &[(v2.clone(), b"two".to_vec())],
            std::slice::from_ref(&v2),
            20,
        )
        .unwrap();
    assert_eq!(
        store.component_versions().unwrap(),
        [
            ComponentVersion {
                version: v1,
                stored_at: 10,
                retired_at: Some(20),
                live_instances: 1,
            },
            ComponentVersion {
                version: v2,
                stored_at: 20,
                retired_at: None,
                live_instances: 0,
            },
        ]
    );
}
