//! The store's own guarantees, on a real SQLite file: the store contract
//! (`reprise_core::conformance`, run by the macro below), then what only
//! SQLite can show (its files, its writer thread, rows written by hand).

use super::*;
use reprise_core::store::Staging;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("test.db")).unwrap();
    (dir, store)
}

mod conformance {
    reprise_core::store_conformance_tests!(super::store);
}

use reprise_core::conformance::new_instance;

fn start(store: &SqliteStore, new: &NewInstance) -> StartOutcome {
    store.start_instance(new, None).unwrap().0
}

/// What an episode of `id` would read now: every queued message's sequence
/// number, and the instance.
fn read_all(store: &SqliteStore, id: &str) -> (Vec<i64>, Instance) {
    let work = store.load_work(id, WorkRead::ALL).unwrap().unwrap();
    let seqs = work.messages.iter().map(|queued| queued.seq).collect();
    (seqs, work.instance)
}

/// An episode that keeps `read` running, consuming the messages `consumed`
/// and adding `entries`.
fn running(read: &Instance, consumed: Vec<i64>, entries: Vec<HistoryEntry>) -> EpisodeCommit {
    let mut updated = read.successor(read.updated_at + 1);
    updated.status = RuntimeStatus::Running;
    EpisodeCommit::consuming(read.clone(), updated, entries, consumed)
}

/// Stages (one call for the history, one for the effects) a commit of
/// `read`, whose history is empty, that sends `target` one event per
/// payload under `token`; returns it, not committed.
fn stage_sends(
    store: &SqliteStore,
    read: &Instance,
    consumed: Vec<i64>,
    token: i64,
    target: &str,
    payloads: std::ops::Range<usize>,
) -> EpisodeCommit {
    let entries: Vec<HistoryEntry> = payloads
        .clone()
        .map(|n| HistoryEntry::EventSent {
            timestamp: 2,
            instance_id: target.to_owned(),
            name: "e".to_owned(),
            payload: n.to_string(),
        })
        .collect();
    let mut commit = running(read, consumed, entries.clone());
    commit.sent_events = payloads
        .map(|n| (target.to_owned(), "e".to_owned(), n.to_string()))
        .collect();
    commit.staging = Some(Staging { token });
    store
        .stage_history(&read.id, read.generation, 0, entries)
        .unwrap();
    store
        .stage_effects(&read.id, token, 0, commit.effects())
        .unwrap();
    commit
}

/// The payloads of the events queued for `id`, oldest first.
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
    // Older instances have no version: they run on the current file; and
    // they are not traced.
    assert_eq!(old.version, None);
    assert_eq!(old.trace, None);
    // The instances there were are counted, and the ones after too.
    assert_eq!(
        store.instance_counts().unwrap(),
        [(RuntimeStatus::Running, 2)]
    );
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
    let unavailable = error.unavailable().expect("an outside cause");
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

/// SQLite deletes the consumed messages it is named (not only a prefix:
/// `conformance::a_commit_deletes_the_messages_it_names_and_no_other`) and
/// checks that each was queued: a commit naming one that is not is refused
/// whole.
#[test]
fn a_commit_that_consumes_a_message_not_queued_is_refused_whole() {
    let (_dir, store) = store();
    start(&store, &new_instance("a"));
    store.raise_event("a", "e", "1", 1).unwrap();
    let (seqs, read) = read_all(&store, "a");
    let [start_message, event] = seqs[..] else {
        panic!("two messages queued");
    };
    let unknown = event + 1_000;
    let naming = running(&read, vec![start_message, unknown], vec![]);
    let error = store.commit_episode(&naming).unwrap_err();
    assert!(
        format!("{error:#}").contains("consumed 2 messages, but only 1"),
        "{error:#}"
    );
    assert_eq!(store.queued_messages("a").unwrap(), [start_message, event]);
}

/// A host that dies while staging (an abandoned attempt), then between two
/// batches of effects: the rest apply after the file is reopened, each
/// once, in order, and no row of either attempt is left in `outbox`.
#[test]
fn a_staged_commit_half_applied_when_the_host_dies_is_finished_after_reopening() {
    let (dir, store) = store();
    start(&store, &new_instance("sender"));
    start(&store, &new_instance("target"));
    let (through, read) = read_all(&store, "sender");
    stage_sends(&store, &read, through.clone(), 1, "target", 100..110);
    let commit = stage_sends(&store, &read, through, 2, "target", 0..10);
    assert!(matches!(
        store.commit_episode(&commit).unwrap(),
        CommitOutcome::Committed(_)
    ));

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
fn a_pending_effect_this_host_cannot_read_is_set_aside_and_the_rest_applied() {
    let (_dir, store) = store();
    start(&store, &new_instance("sender"));
    start(&store, &new_instance("target"));
    let (through, read) = read_all(&store, "sender");
    let commit = stage_sends(&store, &read, through, 7, "target", 0..3);
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
