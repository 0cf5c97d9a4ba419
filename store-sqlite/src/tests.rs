//! The store's own guarantees, on a real SQLite file.

use super::*;
use reprise_core::store::{ActivityLease, Staging};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("test.db")).unwrap();
    (dir, store)
}

fn new_instance(id: &str) -> NewInstance {
    NewInstance {
        id: id.into(),
        name: "Counter".into(),
        input: "0".into(),
        now: 1,
        parent: None,
        version: Some("sha256:v1".into()),
    }
}

fn start(store: &SqliteStore, new: &NewInstance) -> StartOutcome {
    store.start_instance(new, None).unwrap().0
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
    EpisodeCommit {
        read: read.clone(),
        updated,
        history: HistoryChange::Append(vec![HistoryEntry::OrchestratorStarted { timestamp: 2 }]),
        consumed,
        timers: vec![],
        activities: vec![],
        lease: ActivityLease::default(),
        children: vec![],
        sent_events: vec![],
        requeued: Vec::new(),
        staging: None,
    }
}

/// Commits an episode that moves the instance to `status`, consuming everything read.
fn finish(store: &SqliteStore, id: &str, status: RuntimeStatus) -> CommitOutcome {
    let work = store
        .load_work(id, WorkRead::ALL)
        .unwrap()
        .expect("messages are queued");
    store
        .commit_episode(&episode(&work.instance, status, seqs(&work)))
        .unwrap()
}

#[test]
fn a_direct_first_episode_commits_with_its_start_or_the_start_is_queued() {
    let (_dir, store) = store();
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
    assert_eq!(store.instances_with_messages().unwrap(), vec!["a"]);
}

#[test]
fn a_direct_episode_applies_only_to_the_state_it_was_planned_on() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    finish(&store, "a", RuntimeStatus::Running);
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
    let work = store.load_work("a", WorkRead::ALL).unwrap().unwrap();
    assert_eq!(work.messages.len(), 2);
    assert_eq!(work.history.len(), 1);

    // The state it was planned on: applied, nothing queued by it.
    store
        .commit_episode(&episode(&running, RuntimeStatus::Running, seqs(&work)))
        .unwrap();
    let now_running = store.instance("a").unwrap().unwrap();
    let planned = DirectEpisode {
        commit: episode(&now_running, RuntimeStatus::Running, vec![]),
        history_len: 2,
    };
    let (_, applied) = store.deliver("a", &event, Some(planned)).unwrap();
    assert_eq!(applied, Applied::Directly(FollowUp::default()));
    assert_eq!(
        store.instance_with_history("a").unwrap().unwrap().1.len(),
        3
    );
    assert!(store.instances_with_messages().unwrap().is_empty());
}

#[test]
fn a_second_start_of_an_unfinished_instance_conflicts() {
    let (_dir, store) = store();
    assert_eq!(start(&store, &new_instance("a")), StartOutcome::Started);
    assert_eq!(
        start(&store, &new_instance("a")),
        StartOutcome::Conflict(RuntimeStatus::Pending)
    );
}

#[test]
fn a_finished_instance_restarts_as_a_new_generation_with_a_fresh_history() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    assert_eq!(
        finish(&store, "a", RuntimeStatus::Completed),
        CommitOutcome::Committed(FollowUp::default())
    );
    assert_eq!(
        store.instance_with_history("a").unwrap().unwrap().1.len(),
        1
    );

    assert_eq!(start(&store, &new_instance("a")), StartOutcome::Started);
    let instance = store.instance("a").unwrap().unwrap();
    assert_eq!(
        (instance.status, instance.generation),
        (RuntimeStatus::Pending, 1)
    );
    assert!(
        store
            .instance_with_history("a")
            .unwrap()
            .unwrap()
            .1
            .is_empty()
    );
}

#[test]
fn delivery_is_refused_to_finished_unknown_and_terminating_instances() {
    let (_dir, store) = store();
    assert_eq!(
        store.raise_event("x", "e", "1", 1).unwrap(),
        DeliveryOutcome::NotFound
    );

    start(&store, &new_instance("a"));
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
        finish(&store, "a", RuntimeStatus::Terminated),
        CommitOutcome::Committed(FollowUp::default())
    );
    assert_eq!(
        store.raise_event("a", "e", "3", 1).unwrap(),
        DeliveryOutcome::Finished(RuntimeStatus::Terminated)
    );
    assert!(store.instances_with_messages().unwrap().is_empty());
}

#[test]
fn a_finishing_episode_that_missed_a_message_is_refused() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    let work = store.load_work("a", WorkRead::ALL).unwrap().unwrap();
    // An event lands after the episode read the inbox.
    store.raise_event("a", "e", "1", 1).unwrap();

    let commit = episode(&work.instance, RuntimeStatus::Completed, seqs(&work));
    assert_eq!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::LateMessages
    );
    // Nothing was written: the instance is still pending with both messages.
    assert_eq!(
        store.instance("a").unwrap().unwrap().status,
        RuntimeStatus::Pending
    );
    assert_eq!(
        store
            .load_work("a", WorkRead::ALL)
            .unwrap()
            .unwrap()
            .messages
            .len(),
        2
    );

    // A non-finishing episode commits and leaves the late message queued.
    let mut running = commit.clone();
    running.updated.status = RuntimeStatus::Running;
    assert_eq!(
        store.commit_episode(&running).unwrap(),
        CommitOutcome::Committed(FollowUp::default())
    );
    assert_eq!(
        store
            .load_work("a", WorkRead::ALL)
            .unwrap()
            .unwrap()
            .messages
            .len(),
        1
    );
    // The episode's view is now stale.
    assert_eq!(
        store.commit_episode(&running).unwrap(),
        CommitOutcome::Stale
    );
}

#[test]
fn activities_leased_in_their_commit_are_returned_and_left_to_no_one_else() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    let work = store.load_work("a", WorkRead::ALL).unwrap().unwrap();
    let mut commit = episode(
        &work.instance,
        RuntimeStatus::Running,
        vec![work.messages[0].seq],
    );
    commit.activities = vec![
        (1, "First".into(), "1".into()),
        (2, "Second".into(), "2".into()),
    ];
    commit.lease = ActivityLease {
        count: 1,
        until: 1_000,
    };
    let CommitOutcome::Committed(follow_up) = store.commit_episode(&commit).unwrap() else {
        panic!("the episode was refused");
    };
    let [leased] = &follow_up.leased[..] else {
        panic!("expected one leased activity: {:?}", follow_up.leased);
    };
    assert_eq!(
        (
            leased.task_id,
            &*leased.name,
            &*leased.input,
            leased.generation
        ),
        (1, "First", "1", 0)
    );
    assert_eq!(leased.version.as_deref(), Some("sha256:v1"));

    // The dispatcher finds only the one not leased, until the lease expires.
    let claimed = store.claim_activities(999, 10, 10).unwrap();
    assert_eq!(
        claimed.iter().map(|work| work.task_id).collect::<Vec<_>>(),
        [2]
    );
    let expired = store.claim_activities(1_000, 10, 10).unwrap();
    assert_eq!(expired, std::slice::from_ref(leased));
    // Its result is recorded once, through the key the commit returned.
    let done = store
        .complete_activity(leased, Ok("1".into()), None)
        .unwrap();
    assert_eq!(done, Some(Applied::Queued));
    assert_eq!(
        store
            .complete_activity(leased, Ok("1".into()), None)
            .unwrap(),
        None
    );
}

#[test]
fn continue_as_new_replaces_the_history_with_the_new_generation() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    let work = store.load_work("a", WorkRead::ALL).unwrap().unwrap();
    let entries = vec![
        HistoryEntry::ExecutionStarted {
            timestamp: 3,
            name: "Counter".into(),
            input: "7".into(),
        },
        HistoryEntry::OrchestratorStarted { timestamp: 3 },
    ];
    let mut commit = episode(&work.instance, RuntimeStatus::Running, seqs(&work));
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

#[test]
fn a_version_1_database_is_upgraded_and_keeps_its_instances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The instances table as version 1 created it, with one instance.
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE instances (
                    instance_id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,
                    status TEXT NOT NULL, generation INTEGER NOT NULL, input TEXT NOT NULL,
                    output TEXT, custom_status TEXT, created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL, parent_instance_id TEXT,
                    parent_generation INTEGER, parent_task_id INTEGER);
                 INSERT INTO instances VALUES ('old', 'Counter', 'Running', 3, '7', NULL, NULL, 1, 1, NULL, NULL, NULL);
                 INSERT INTO instances VALUES ('ending', 'Counter', 'Running', 0, '1', NULL, NULL, 1, 1, NULL, NULL, NULL);
                 CREATE TABLE history (
                    instance_id TEXT NOT NULL, generation INTEGER NOT NULL,
                    seq INTEGER NOT NULL, entry TEXT NOT NULL,
                    PRIMARY KEY (instance_id, generation, seq)) WITHOUT ROWID;
                 CREATE TABLE inbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL,
                    message TEXT NOT NULL);
                 INSERT INTO inbox (instance_id, message) VALUES
                    ('ending', '{\"type\":\"Terminate\",\"reason\":\"r\"}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let old = store.instance("old").unwrap().unwrap();
    assert_eq!(
        (old.input.as_str(), old.original_input.as_str()),
        ("7", "7")
    );
    // Older instances have no version: they run on the current file.
    assert_eq!(old.version, None);
    start(&store, &new_instance("new"));
    assert_eq!(
        store.instance("new").unwrap().unwrap().version.as_deref(),
        Some("sha256:v1")
    );
    // A termination queued before the upgrade still stops new events.
    assert_eq!(
        store.raise_event("ending", "e", "1", 1).unwrap(),
        DeliveryOutcome::Terminating
    );
    assert_eq!(
        store.raise_event("old", "e", "1", 1).unwrap(),
        DeliveryOutcome::Accepted
    );
    let page = store
        .query_instances(&InstanceFilter::default(), None, 10)
        .unwrap();
    assert_eq!(page.len(), 3);
}

#[test]
fn work_is_read_in_batches_of_the_oldest_messages_unless_a_termination_is_queued() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    for n in 0..10 {
        store.raise_event("a", "e", &n.to_string(), 1).unwrap();
    }
    let batch = WorkRead {
        history: false,
        max_messages: 4,
    };
    let work = store.load_work("a", batch).unwrap().unwrap();
    let oldest: Vec<i64> = store
        .load_work("a", WorkRead::ALL)
        .unwrap()
        .unwrap()
        .messages
        .iter()
        .map(|queued| queued.seq)
        .take(4)
        .collect();
    let read: Vec<i64> = work.messages.iter().map(|queued| queued.seq).collect();
    assert_eq!(read, oldest);
    assert!(work.history.is_empty());
    assert_eq!(work.history_len, 0);

    store.request_termination("a", "r").unwrap();
    let work = store.load_work("a", batch).unwrap().unwrap();
    assert_eq!(
        work.messages.len(),
        12,
        "the start, 10 events, the termination"
    );

    // Finishing consumes the inbox and clears the flag (a rewind makes a
    // failed instance live again); a new start accepts events.
    assert!(
        store
            .read(|connection| terminating(connection, "a"))
            .unwrap()
    );
    finish(&store, "a", RuntimeStatus::Failed);
    assert!(
        !store
            .read(|connection| terminating(connection, "a"))
            .unwrap()
    );
    start(&store, &new_instance("a"));
    assert_eq!(
        store.raise_event("a", "e", "1", 1).unwrap(),
        DeliveryOutcome::Accepted
    );
}

#[test]
fn queries_page_in_creation_order_and_bulk_purge_skips_live_instances() {
    let (_dir, store) = store();
    for (n, id) in ["b", "a", "c"].into_iter().enumerate() {
        let mut new = new_instance(id);
        new.now = 10 + n as Millis;
        start(&store, &new);
    }
    finish(&store, "a", RuntimeStatus::Completed);
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

#[test]
fn concurrent_writes_commit_together_and_a_failing_one_is_undone_alone() {
    let (_dir, store) = store();
    let store = std::sync::Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                let mut kept = 0;
                for n in 0..50 {
                    let fails = n % 3 == 0;
                    let result = store.write(move |connection| {
                        connection.execute(
                            "INSERT INTO inbox (instance_id, message) VALUES (?1, '{}')",
                            [format!("t{thread}-{n}")],
                        )?;
                        if fails {
                            anyhow::bail!("this write fails after inserting");
                        }
                        Ok(())
                    });
                    assert_eq!(result.is_err(), fails);
                    kept += usize::from(!fails);
                }
                kept
            })
        })
        .collect();
    let kept: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let rows: usize =
        store
            .read(|connection| {
                Ok(connection
                    .query_row("SELECT COUNT(*) FROM inbox", [], |row| row.get::<_, i64>(0))?
                    as usize)
            })
            .unwrap();
    assert_eq!(rows, kept, "exactly the successful writes are stored");
}

#[test]
fn a_component_version_is_kept_while_an_instance_may_run_on_it_and_then_collected() {
    let (_dir, store) = store();
    let (v1, v2) = ("sha256:v1".to_owned(), "sha256:v2".to_owned());
    let stored_v1 = [(v1.clone(), b"one".to_vec())];
    let stored_v2 = [(v2.clone(), b"two".to_vec())];
    let (only_v1, only_v2, both) = ([v1.clone()], [v2.clone()], [v1.clone(), v2.clone()]);
    store.record_components(&stored_v1, &only_v1, 10).unwrap();
    start(&store, &new_instance("on-v1"));

    // v2 replaces v1 at time 20; v1 is retired but "on-v1" still runs on it.
    store.record_components(&stored_v2, &only_v2, 20).unwrap();
    assert_eq!(store.collect_components(100).unwrap(), Vec::<String>::new());
    assert_eq!(store.component(&v1).unwrap(), Some(b"one".to_vec()));

    // Failed instances can be rewound, so they still need their version.
    finish(&store, "on-v1", RuntimeStatus::Failed);
    assert_eq!(store.collect_components(100).unwrap(), Vec::<String>::new());
    start(&store, &new_instance("on-v1"));
    finish(&store, "on-v1", RuntimeStatus::Completed);
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

#[test]
fn a_file_that_is_not_a_reprise_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, but somebody's notes\n".repeat(200)).unwrap();
    let foreign = dir.path().join("other.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();

    for (path, needle) in [
        (&text, "not SQLite, or corrupt"),
        (&foreign, "another application's"),
    ] {
        let before = std::fs::read(path).unwrap();
        let error = format!("{:#}", SqliteStore::open(path).err().expect("refused"));
        assert!(
            error.contains(needle) && error.contains("left untouched"),
            "{error}"
        );
        assert_eq!(std::fs::read(path).unwrap(), before, "{}", path.display());
    }
    assert!(!dir.path().join("other.db-wal").exists());
}

#[test]
fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
    // `in_savepoint` catches it: the writer thread must outlive any write.
    let (_dir, store) = store();
    let panicked = store.write(|_connection| -> anyhow::Result<()> {
        panic!("a bug in a write");
    });
    assert!(panicked.is_err());
    assert_eq!(start(&store, &new_instance("after")), StartOutcome::Started);
    assert!(store.instance("after").unwrap().is_some());
}

#[test]
fn a_database_held_by_another_process_is_unavailable_and_writes_resume_once_it_is_free() {
    let (dir, store) = store();
    start(&store, &new_instance("a"));
    let other = Connection::open(dir.path().join("test.db")).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // After the busy timeout: SQLITE_BUSY, an outside cause.
    let error = store.raise_event("a", "e", "1", 1).unwrap_err();
    let unavailable = reprise_core::store::unavailable(&error).expect("an outside cause");
    assert!(
        unavailable.to_string().contains("another process"),
        "{error:#}"
    );

    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        store.raise_event("a", "e", "1", 1).unwrap(),
        DeliveryOutcome::Accepted
    );
    assert_eq!(
        store
            .load_work("a", WorkRead::ALL)
            .unwrap()
            .unwrap()
            .messages
            .len(),
        2
    );
}

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

fn stage(store: &SqliteStore, commit: &EpisodeCommit, batch: usize) {
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

fn payloads_queued(store: &SqliteStore, id: &str) -> Vec<String> {
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

#[test]
fn a_staged_commit_is_invisible_until_it_lands_and_its_effects_apply_once_in_batches() {
    let (dir, store) = store();
    start(&store, &new_instance("sender"));
    start(&store, &new_instance("target"));
    let work = store.load_work("sender", WorkRead::ALL).unwrap().unwrap();
    let through = seqs(&work);

    // An abandoned attempt (a host that died while staging), then the real one.
    let abandoned = staged_commit(&work.instance, through.clone(), 1, "target", 100..110);
    stage(&store, &abandoned, 4);
    let commit = staged_commit(&work.instance, through, 2, "target", 0..10);
    stage(&store, &commit, 4);
    let (_, history) = store.instance_with_history("sender").unwrap().unwrap();
    assert!(history.is_empty(), "staged entries are invisible");
    assert!(payloads_queued(&store, "target").is_empty());

    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));
    let (_, history) = store.instance_with_history("sender").unwrap().unwrap();
    assert_eq!(history, commit.new_entries());
    let pending = store.load_work("sender", WorkRead::ALL).unwrap().unwrap();
    assert!(pending.effects_pending && pending.messages.is_empty());

    // One batch, then the host dies: the rest applies after it reopens.
    let first = store.apply_pending_effects("sender", 4).unwrap().unwrap();
    assert_eq!(first.notify, ["target"]);
    drop(store);
    let store = SqliteStore::open(&dir.path().join("test.db")).unwrap();
    assert!(
        store
            .instances_with_messages()
            .unwrap()
            .contains(&"sender".to_owned())
    );
    while store.apply_pending_effects("sender", 4).unwrap().is_some() {}
    let expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    assert_eq!(
        payloads_queued(&store, "target"),
        expected,
        "each once, in order"
    );
    assert!(store.load_work("sender", WorkRead::ALL).unwrap().is_none());
    assert_eq!(
        store
            .read(
                |c| Ok(c.query_row("SELECT COUNT(*) FROM outbox", [], |row| row
                    .get::<_, i64>(0))?)
            )
            .unwrap(),
        0,
        "the abandoned attempt's rows are gone too"
    );
}

#[test]
fn a_commit_planned_on_an_older_revision_is_refused_whatever_the_row_looks_like() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    let work = store.load_work("a", WorkRead::ALL).unwrap().unwrap();
    assert_eq!(work.instance.revision, 0);
    let through = seqs(&work);
    let first = episode(&work.instance, RuntimeStatus::Running, through.clone());
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

    // A new start under the ID moves the revision on too.
    store.request_termination("a", "r").unwrap();
    finish(&store, "a", RuntimeStatus::Terminated);
    let finished = store.instance("a").unwrap().unwrap();
    start(&store, &new_instance("a"));
    let restarted = store.instance("a").unwrap().unwrap();
    assert_eq!(restarted.revision, finished.revision + 1);
    let late = episode(&finished, RuntimeStatus::Completed, vec![]);
    assert_eq!(store.commit_episode(&late).unwrap(), CommitOutcome::Stale);
}

#[test]
fn consumed_messages_are_named_one_by_one_and_a_gap_is_refused() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    store.raise_event("a", "e", "1", 1).unwrap();
    let work = store.load_work("a", WorkRead::ALL).unwrap().unwrap();
    let [start_message, event] = seqs(&work)[..] else {
        panic!("two messages queued");
    };
    // Skipping the start message: it was not read, it must not go.
    let skipping = episode(&work.instance, RuntimeStatus::Running, vec![event]);
    let error = store.commit_episode(&skipping).unwrap_err();
    assert!(
        format!("{error:#}").contains("consumed 1 messages"),
        "{error:#}"
    );
    assert_eq!(store.queued_messages("a").unwrap(), [start_message, event]);

    let first = episode(&work.instance, RuntimeStatus::Running, vec![start_message]);
    assert!(matches!(
        store.commit_episode(&first).unwrap(),
        CommitOutcome::Committed(_)
    ));
    assert_eq!(store.queued_messages("a").unwrap(), [event]);
}

#[test]
fn a_pending_effect_this_host_cannot_read_is_set_aside_and_the_rest_applied() {
    let (_dir, store) = store();
    start(&store, &new_instance("sender"));
    start(&store, &new_instance("target"));
    let work = store.load_work("sender", WorkRead::ALL).unwrap().unwrap();
    let commit = staged_commit(&work.instance, seqs(&work), 7, "target", 0..3);
    stage(&store, &commit, 2);
    store
        .write(|connection| {
            connection.execute(
                "UPDATE outbox SET effect = '{\"type\":\"Gibberish\"}' WHERE seq = 1",
                [],
            )?;
            Ok(())
        })
        .unwrap();
    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));
    while store.apply_pending_effects("sender", 2).unwrap().is_some() {}
    assert_eq!(payloads_queued(&store, "target"), ["0", "2"]);
    assert!(store.load_work("sender", WorkRead::ALL).unwrap().is_none());
}
