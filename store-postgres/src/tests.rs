//! The store contract, on a real PostgreSQL server started for the test
//! run (`reprise-testing-postgres`), a fresh database per test.

use reprise_testing_postgres::PostgresServer;

use super::PostgresStore;

/// A fresh database, its schema created by the store opened on it.
fn fresh_database() -> (String, PostgresStore) {
    let url = PostgresServer::shared()
        .create_database()
        .expect("can create a database");
    let store = PostgresStore::open(&url, super::Options::default()).expect("can open the store");
    (url, store)
}

fn store() -> ((), PostgresStore) {
    ((), fresh_database().1)
}

mod conformance {
    reprise_core::store_conformance_tests!(super::store);
}

mod hosts {
    use std::time::Duration;

    use reprise_core::conformance::new_instance;
    use reprise_core::model::{Message, RuntimeStatus, now_millis};
    use reprise_core::store::{
        ActivityLease, Applied, CommitOutcome, DeliveryOutcome, DirectEpisode, EpisodeCommit,
        LeasedActivities, ScheduledActivity, StartOutcome, Store, WakeUp, WorkRead,
    };
    use reprise_testing_postgres::PostgresServer;

    use crate::{Options, PostgresStore};

    /// Two hosts on one fresh database, with leases long enough that only
    /// the test ends one.
    fn two_hosts() -> (PostgresStore, PostgresStore) {
        let url = PostgresServer::shared().create_database().unwrap();
        let options = Options {
            lease_ttl: Duration::from_secs(60),
            ..Options::default()
        };
        (
            PostgresStore::open(&url, options.clone()).unwrap(),
            PostgresStore::open(&url, options).unwrap(),
        )
    }

    /// Ends `host`'s lease, as if it had been frozen past it.
    fn expire(host: &PostgresStore) {
        host.block(async {
            host.pool
                .get()
                .await
                .unwrap()
                .execute(
                    "UPDATE hosts SET alive_until = 0 WHERE host_id = $1",
                    &[&host.membership.id()],
                )
                .await
                .unwrap()
        });
    }

    /// An episode that runs the instance, consuming what `host` reads.
    fn episode(host: &PostgresStore, id: &str) -> EpisodeCommit {
        let work = host.load_work(id, WorkRead::ALL).unwrap().unwrap();
        let mut updated = work.instance.successor(2);
        updated.status = RuntimeStatus::Running;
        let consumed = work.messages.iter().map(|queued| queued.seq).collect();
        EpisodeCommit::consuming(work.instance, updated, Vec::new(), consumed)
    }

    #[test]
    fn a_host_taken_for_dead_commits_nothing_and_another_takes_its_instance_over() {
        let (a, b) = two_hosts();
        let started = a.start_instance(&new_instance("x"), None).unwrap().0;
        assert_eq!(started, StartOutcome::Started);
        assert!(a.claim("x").unwrap(), "the starting host owns it");
        assert!(!b.claim("x").unwrap(), "owned by a live host");
        // Planned by the owner, which then freezes past its lease.
        let planned = episode(&a, "x");
        expire(&a);
        assert_eq!(a.commit_episode(&planned).unwrap(), CommitOutcome::Stale);
        assert_eq!(b.unowned_work(10).unwrap(), ["x"]);
        assert!(b.claim("x").unwrap(), "a dead host's instance is free");
        assert!(matches!(
            b.commit_episode(&episode(&b, "x")).unwrap(),
            CommitOutcome::Committed(_)
        ));
        // The old owner's plan stays refused (its revision is gone too).
        assert_eq!(a.commit_episode(&planned).unwrap(), CommitOutcome::Stale);
        assert!(!a.claim("x").unwrap(), "now the other host's");
    }

    /// A host opened on the seat of an earlier run (its address, which only
    /// one process can hold) ends that run at once: its instances are free
    /// and its commits refused. A host on another seat ends nobody.
    #[test]
    fn a_host_on_an_earlier_runs_seat_takes_its_instances_over_at_once() {
        let url = PostgresServer::shared().create_database().unwrap();
        let seated = |seat: &str| Options {
            lease_ttl: Duration::from_secs(60),
            seat: Some(seat.to_owned()),
        };
        let crashed = PostgresStore::open(&url, seated("m/127.0.0.1:1")).unwrap();
        crashed.start_instance(&new_instance("x"), None).unwrap();
        let planned = episode(&crashed, "x");

        let neighbour = PostgresStore::open(&url, seated("m/127.0.0.1:2")).unwrap();
        assert!(!neighbour.claim("x").unwrap(), "another seat ends nobody");
        let restarted = PostgresStore::open(&url, seated("m/127.0.0.1:1")).unwrap();
        assert!(restarted.claim("x").unwrap(), "the earlier run is over");
        assert_eq!(
            crashed.commit_episode(&planned).unwrap(),
            CommitOutcome::Stale
        );
        assert!(matches!(
            restarted.commit_episode(&episode(&restarted, "x")).unwrap(),
            CommitOutcome::Committed(_)
        ));
    }

    #[test]
    fn a_host_taken_for_dead_starts_nothing_directly() {
        let (a, _b) = two_hosts();
        let new = new_instance("x");
        let mut updated = new.started(0).successor(2);
        updated.status = RuntimeStatus::Completed;
        let direct = DirectEpisode {
            commit: EpisodeCommit::consuming(new.started(0), updated, Vec::new(), Vec::new()),
            history_len: 0,
        };
        expire(&a);
        let started = a.start_instance(&new, Some(direct)).unwrap();
        // Started (any host may accept it), but not run by a fenced host.
        assert_eq!(started, (StartOutcome::Started, Applied::Queued));
        assert_eq!(
            a.instance("x").unwrap().unwrap().status,
            RuntimeStatus::Pending
        );
    }

    /// The wake-ups `host` gets, as (instance, the host that accepted a
    /// request for it).
    fn wake_ups(host: &PostgresStore) -> std::sync::mpsc::Receiver<(String, Option<String>)> {
        let (told, wakes) = std::sync::mpsc::channel();
        let told = std::sync::Mutex::new(told);
        host.on_wake(Box::new(move |wake: WakeUp<'_>| {
            let accepted_by = wake.accepted_by.map(str::to_owned);
            let _ = told
                .lock()
                .unwrap()
                .send((wake.instance.to_owned(), accepted_by));
        }));
        wakes
    }

    fn event() -> Message {
        Message::Event {
            name: "e".into(),
            payload: "1".into(),
            accepted_at: 2,
        }
    }

    #[test]
    fn an_event_for_another_hosts_instance_is_queued_and_that_host_told() {
        let (a, b) = two_hosts();
        let wakes = wake_ups(&b);
        b.start_instance(&new_instance("x"), None).unwrap();
        let delivered = a.deliver("x", &event(), None).unwrap();
        assert_eq!(delivered, (DeliveryOutcome::Accepted, Applied::Elsewhere));
        let accepted = wakes.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(accepted, ("x".to_owned(), Some(a.membership.id())));
        assert_eq!(b.queued_messages("x").unwrap().len(), 2, "start and event");
        // A claim of it by the other host wakes its owner too, for no
        // request of its own.
        assert!(!a.claim("x").unwrap());
        let claimed = wakes.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(claimed, ("x".to_owned(), None));
        // Its own instance: queued, for it to run.
        let delivered = b.deliver("x", &event(), None).unwrap();
        assert_eq!(delivered, (DeliveryOutcome::Accepted, Applied::Queued));
    }

    /// An instance handed over is the new owner's at once: it is woken
    /// for it, the old owner's commits are refused, and the old owner's
    /// claim wakes the new one. Only the owner can hand an instance over.
    #[test]
    fn an_instance_handed_over_is_the_other_hosts_and_that_host_told() {
        let (a, b) = two_hosts();
        let wakes = wake_ups(&b);
        a.start_instance(&new_instance("x"), None).unwrap();
        assert!(a.claim("x").unwrap());
        let planned = episode(&a, "x");
        assert!(
            !b.hand_over("x", &b.membership.id()).unwrap(),
            "not b's to give"
        );

        assert!(a.hand_over("x", &b.membership.id()).unwrap());
        let told = wakes.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(told, ("x".to_owned(), None));
        assert_eq!(a.commit_episode(&planned).unwrap(), CommitOutcome::Stale);
        assert!(!a.claim("x").unwrap(), "b's now");
        assert_eq!(wakes.recv_timeout(Duration::from_secs(30)).unwrap().0, "x");
        assert!(b.claim("x").unwrap());
        assert!(matches!(
            b.commit_episode(&episode(&b, "x")).unwrap(),
            CommitOutcome::Committed(_)
        ));
        // A request a accepts now is queued for b.
        let delivered = a.deliver("x", &event(), None).unwrap();
        assert_eq!(delivered, (DeliveryOutcome::Accepted, Applied::Elsewhere));
    }

    /// An instance is never handed to a host that is not alive (its owner
    /// keeps it), nor by one taken for dead (which owns nothing).
    #[test]
    fn an_instance_is_not_handed_over_to_or_by_a_dead_host() {
        let (a, b) = two_hosts();
        a.start_instance(&new_instance("x"), None).unwrap();
        b.start_instance(&new_instance("y"), None).unwrap();
        assert!(a.claim("x").unwrap());
        expire(&b);
        assert!(!a.hand_over("x", &b.membership.id()).unwrap());
        assert!(!a.hand_over("x", "no-such-host").unwrap());
        assert!(a.claim("x").unwrap(), "still a's");
        assert!(matches!(
            a.commit_episode(&episode(&a, "x")).unwrap(),
            CommitOutcome::Committed(_)
        ));
        assert!(!b.hand_over("y", &a.membership.id()).unwrap());
        assert!(a.claim("y").unwrap(), "a dead host's, free to claim");
    }

    /// Hosts' clocks may disagree on an activity's lease without harm: a
    /// host whose clock runs an hour behind leases for as long as it asks,
    /// measured on the database's clock, and one whose clock runs an hour
    /// ahead cannot take an activity a live host leased a moment ago.
    #[test]
    fn hosts_whose_clocks_disagree_agree_on_activity_leases() {
        const HOUR: u64 = 60 * 60 * 1_000;
        const MINUTE: u64 = 60 * 1_000;
        let (behind, ahead) = two_hosts();
        let now = now_millis();
        behind.start_instance(&new_instance("x"), None).unwrap();
        let mut commit = episode(&behind, "x");
        commit.activities = (1..=2)
            .map(|task_id| ScheduledActivity {
                task_id,
                name: "A".into(),
                input: "1".into(),
                attempt: 1,
            })
            .collect();
        commit.lease = ActivityLease {
            count: 1,
            from: now - HOUR,
            length: MINUTE,
        };
        let CommitOutcome::Committed(follow_up) = behind.commit_episode(&commit).unwrap() else {
            panic!("the episode was refused");
        };
        assert_eq!(follow_up.leased.len(), 1, "leased in its commit");
        let claimed = behind.claim_activities(now - HOUR, MINUTE, 10).unwrap();
        assert_eq!(claimed.len(), 1, "leased by the dispatcher");

        assert!(
            ahead
                .claim_activities(now + HOUR, MINUTE, 10)
                .unwrap()
                .is_empty(),
            "both leases last a minute on the database's clock"
        );
        let counts = ahead.counts(now + HOUR).unwrap();
        assert_eq!(
            (counts.activities_waiting, counts.activities_leased),
            (0, 2)
        );
        // A host releases only its own lost leases, never another's.
        let leased = LeasedActivities::of(&commit).expect("the commit leases");
        assert_eq!(ahead.release_lost_leases(&leased).unwrap(), 0);
        assert_eq!(behind.release_lost_leases(&leased).unwrap(), 1);
    }

    #[test]
    fn an_own_instance_is_polled_once_a_message_waited_a_poll_and_could_wake_it() {
        let (a, b) = two_hosts();
        a.start_instance(&new_instance("x"), None).unwrap();
        let mut suspend = episode(&a, "x");
        suspend.updated.status = RuntimeStatus::Suspended;
        assert!(matches!(
            a.commit_episode(&suspend).unwrap(),
            CommitOutcome::Committed(_)
        ));
        a.raise_event("x", "held", "1", 3).unwrap();
        // Held for a resume: not worth an episode on every poll, even
        // once it has waited a poll.
        assert!(a.unowned_work(10).unwrap().is_empty());
        assert!(a.unowned_work(10).unwrap().is_empty());
        let resume = Message::Resume {
            reason: "go".into(),
        };
        a.deliver("x", &resume, None).unwrap();
        // Queued since the last poll: its wake-up is on the way. Still
        // there at the next poll: a wake-up was lost, the poll finds it.
        assert!(a.unowned_work(10).unwrap().is_empty());
        assert_eq!(a.unowned_work(10).unwrap(), ["x"]);
        // Another live host's instance is never the other's work.
        assert!(b.unowned_work(10).unwrap().is_empty());
    }
}

mod batches {
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::{Duration, Instant};

    use reprise_core::conformance::new_instance;
    use reprise_core::model::RuntimeStatus;
    use reprise_core::store::{CommitOutcome, DeliveryOutcome, EpisodeCommit, Store, WorkRead};
    use reprise_testing_postgres::PostgresServer;

    use crate::PostgresStore;

    fn open() -> (String, Arc<PostgresStore>) {
        let (url, store) = super::fresh_database();
        (url, Arc::new(store))
    }

    /// Runs `work` on a thread; its outcome within `limit`, or `None`.
    fn within<T: Send + 'static>(
        limit: Duration,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, outcome) = std::sync::mpsc::channel();
        thread::spawn(move || done.send(work()));
        outcome.recv_timeout(limit).ok()
    }

    /// Statements of this database waiting for a lock.
    fn lock_waits(url: &str) -> usize {
        PostgresServer::shared()
            .query(
                url,
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .unwrap()[0]
            .parse()
            .unwrap()
    }

    #[test]
    fn writes_waiting_for_one_locked_row_hold_up_no_other_instance() {
        let (url, store) = open();
        for id in ["held", "free"] {
            store.start_instance(&new_instance(id), None).unwrap();
        }
        // Another transaction holds the row, as a frozen host's would.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, connection) = runtime
            .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
            .unwrap();
        runtime.spawn(connection);
        runtime
            .block_on(client.batch_execute(
                "BEGIN; SELECT 1 FROM instances WHERE instance_id = 'held' FOR UPDATE",
            ))
            .unwrap();
        // More writes to it than batches run at once.
        let held: Vec<_> = (0..crate::batch::BATCHES + 1)
            .map(|n| {
                let store = Arc::clone(&store);
                thread::spawn(move || store.raise_event("held", "e", &n.to_string(), 2))
            })
            .collect();
        let waiting = Instant::now();
        while lock_waits(&url) < crate::batch::BATCHES {
            assert!(
                waiting.elapsed() < Duration::from_secs(30),
                "no write waits"
            );
            thread::yield_now();
        }
        let free = Arc::clone(&store);
        let delivered = within(Duration::from_secs(20), move || {
            (0..10)
                .map(|n| free.raise_event("free", "e", &n.to_string(), 2).unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(
            delivered,
            Some(vec![DeliveryOutcome::Accepted; 10]),
            "events to another instance went through while the row was held"
        );
        runtime.block_on(client.batch_execute("COMMIT")).unwrap();
        for write in held {
            assert_eq!(write.join().unwrap().unwrap(), DeliveryOutcome::Accepted);
        }
        // Its start, and each event.
        let queued = store.queued_messages("held").unwrap().len();
        assert_eq!(queued, crate::batch::BATCHES + 2);
    }

    #[test]
    fn a_failing_write_fails_alone_and_writes_nothing() {
        let (_url, store) = open();
        let ids: Vec<String> = (0..16).map(|n| format!("i{n:02}")).collect();
        let mut commits: Vec<EpisodeCommit> = ids
            .iter()
            .map(|id| {
                store.start_instance(&new_instance(id), None).unwrap();
                let work = store.load_work(id, WorkRead::ALL).unwrap().unwrap();
                let mut updated = work.instance.successor(2);
                updated.status = RuntimeStatus::Running;
                let consumed = work.messages.iter().map(|queued| queued.seq).collect();
                EpisodeCommit::consuming(work.instance, updated, Vec::new(), consumed)
            })
            .collect();
        // Claims a message that is not queued: refused by the store.
        commits[7].consumed.push(i64::MAX);
        let start = Arc::new(Barrier::new(commits.len()));
        let outcomes: Vec<_> = commits
            .into_iter()
            .map(|commit| {
                let (store, start) = (Arc::clone(&store), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    store.commit_episode(&commit)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        for (id, outcome) in ids.iter().zip(outcomes) {
            let status = store.instance(id).unwrap().unwrap().status;
            if id == "i07" {
                let error = outcome.unwrap_err();
                assert!(format!("{error:#}").contains("consumed"), "{error:#}");
                assert_eq!(status, RuntimeStatus::Pending, "nothing written");
                assert_eq!(store.queued_messages(id).unwrap().len(), 1);
            } else {
                assert!(matches!(outcome.unwrap(), CommitOutcome::Committed(_)));
                assert_eq!(status, RuntimeStatus::Running);
            }
        }
    }
}

/// A database of schema version 1 (before trace contexts, kept instance
/// counts and activity attempts) is upgraded by
/// the next host that opens it, and keeps its instances.
#[test]
fn a_version_1_schema_is_upgraded_and_keeps_its_instances() {
    use reprise_core::conformance::new_instance;
    use reprise_core::model::RuntimeStatus;
    use reprise_core::store::{NewInstance, Store};

    let url = PostgresServer::shared().create_database().unwrap();
    let store = PostgresStore::open(&url, super::Options::default()).unwrap();
    store.start_instance(&new_instance("old"), None).unwrap();
    drop(store);
    PostgresServer::shared()
        .query(
            &url,
            "ALTER TABLE instances DROP COLUMN trace; ALTER TABLE activities DROP COLUMN attempt;
             DROP TABLE instance_counts, instance_count_changes;
             DROP FUNCTION reprise_count_instances CASCADE; ALTER TABLE hosts DROP COLUMN seat;
             ALTER TABLE activities DROP COLUMN leased_from;
             UPDATE reprise_schema SET version = 1",
        )
        .unwrap();

    let store = PostgresStore::open(&url, super::Options::default()).unwrap();
    assert_eq!(store.instance("old").unwrap().unwrap().trace, None);
    // The instances there were are counted, and the ones after too.
    assert_eq!(
        store.instance_counts().unwrap(),
        [(RuntimeStatus::Pending, 1)]
    );
    let traced = NewInstance {
        trace: Some("t".into()),
        ..new_instance("new")
    };
    store.start_instance(&traced, None).unwrap();
    assert_eq!(
        store.instance("new").unwrap().unwrap().trace.as_deref(),
        Some("t")
    );
    let version = PostgresServer::shared()
        .query(&url, "SELECT version FROM reprise_schema")
        .unwrap();
    assert_eq!(version, [crate::schema::VERSION.to_string()]);
    assert_eq!(
        store.instance_counts().unwrap(),
        [(RuntimeStatus::Pending, 2)]
    );
}

/// Every change to the counts, from any host, is counted; a fold moves
/// the changes into the totals and the sums stay right.
#[test]
fn changes_to_the_counts_from_several_hosts_are_folded_and_the_sums_stay_right() {
    use reprise_core::conformance::new_instance;
    use reprise_core::model::RuntimeStatus;
    use reprise_core::store::Store;

    let url = PostgresServer::shared().create_database().unwrap();
    let hosts = [
        PostgresStore::open(&url, super::Options::default()).unwrap(),
        PostgresStore::open(&url, super::Options::default()).unwrap(),
    ];
    std::thread::scope(|scope| {
        for (n, host) in hosts.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..20 {
                    let id = format!("host-{n}-{i}");
                    host.start_instance(&new_instance(&id), None).unwrap();
                }
            });
        }
    });
    // A change not folded yet (as a trigger appends them).
    PostgresServer::shared()
        .query(
            &url,
            "INSERT INTO instance_count_changes VALUES ('Pending', 5)",
        )
        .unwrap();
    assert_eq!(
        hosts[0].instance_counts().unwrap(),
        [(RuntimeStatus::Pending, 45)]
    );
    let left = PostgresServer::shared()
        .query(&url, "SELECT count(*) FROM instance_count_changes")
        .unwrap();
    assert_eq!(left, ["0"]);
    let totals = PostgresServer::shared()
        .query(
            &url,
            "SELECT total FROM instance_counts WHERE status = 'Pending'",
        )
        .unwrap();
    assert_eq!(totals, ["45"]);
    assert_eq!(
        hosts[1].instance_counts().unwrap(),
        [(RuntimeStatus::Pending, 45)]
    );
}

mod polls {
    use reprise_core::store::Store;
    use reprise_testing_postgres::PostgresServer;

    /// Every host polls for work every second: the poll must read what
    /// waits (the inbox, pending effects) and look instances up by their
    /// key, never read every instance (finished ones included), whatever
    /// the planner makes of statistics it may not have yet.
    #[test]
    fn a_poll_for_work_reads_the_work_waiting_not_every_instance() {
        let server = PostgresServer::shared();
        let (url, store) = super::fresh_database();
        server
            .query(
                &url,
                "INSERT INTO instances (instance_id, name, status, generation, input, created_at,
                                        updated_at, original_input)
                 SELECT 'done-' || n, 'X', 'Completed', 0, 'null', n, n, 'null'
                   FROM generate_series(1, 50000) AS n",
            )
            .unwrap();
        let poll = format!(
            "PREPARE poll(text, bigint, bigint) AS {}",
            crate::unowned_work_sql()
        );
        for (statistics, mode) in [
            ("", "force_generic_plan"),
            ("", "force_custom_plan"),
            ("ANALYZE;", "force_generic_plan"),
            ("", "force_custom_plan"),
        ] {
            let plan = server
                .query(
                    &url,
                    &format!(
                        "{statistics} SET plan_cache_mode = {mode}; {poll};
                         EXPLAIN EXECUTE poll('me', 1000, 0)"
                    ),
                )
                .unwrap()
                .join("\n");
            assert!(
                !plan.contains("Seq Scan on instances"),
                "{statistics} {mode}:\n{plan}"
            );
        }
        // And it still finds the work.
        server
            .query(
                &url,
                "INSERT INTO inbox (instance_id, message) VALUES ('done-7', '{}')",
            )
            .unwrap();
        assert_eq!(store.instances_with_messages().unwrap(), ["done-7"]);
    }

    /// The blocks the whole statement read, found in shared buffers or not,
    /// from its `EXPLAIN (ANALYZE, BUFFERS)` (the first node's counts
    /// include those below it): `Buffers: shared hit=H read=R ...`.
    fn blocks_read(plan: &str) -> u32 {
        let counts = plan
            .lines()
            .find_map(|line| line.trim().strip_prefix("Buffers: shared "))
            .unwrap_or_else(|| panic!("no buffers in:\n{plan}"));
        counts
            .split_whitespace()
            .filter_map(|count| count.split_once('='))
            .filter(|(kind, _)| matches!(*kind, "hit" | "read"))
            .map(|(_, blocks)| blocks.trim_end_matches(',').parse::<u32>().unwrap())
            .sum()
    }

    /// A continue-as-new deletes the generation it leaves: it must not
    /// read the dead rows of all earlier ones (spread over the table's
    /// pages, as other instances' rows come between them), which stay
    /// until autovacuum comes.
    #[test]
    fn a_new_generation_deletes_the_last_without_reading_earlier_generations_dead_rows() {
        let server = PostgresServer::shared();
        let (url, _store) = super::fresh_database();
        server
            .query(
                &url,
                "INSERT INTO history (instance_id, generation, seq, entry)
                 SELECT 'counter-' || (n % 1000), n / 1000, 0, '{}'
                   FROM generate_series(0, 99999) AS n;
                 DELETE FROM history WHERE generation < 99",
            )
            .unwrap();
        let plan = server
            .query(
                &url,
                &format!(
                    "BEGIN;
                     PREPARE replace(text, int, bool, int) AS {};
                     EXPLAIN (ANALYZE, BUFFERS) EXECUTE replace('counter-7', 100, false, 99);
                     ROLLBACK",
                    crate::episode::REPLACED_HISTORY
                ),
            )
            .unwrap()
            .join("\n");
        let blocks = blocks_read(&plan);
        // The live generation's row and the index's path to it; the dead
        // rows of 99 earlier generations lie on as many pages.
        assert!(blocks < 20, "{blocks} blocks read:\n{plan}");
    }

    /// Every direct episode asks whether its instance has a message queued.
    /// The inbox churns (every message is inserted, then deleted), and the
    /// question must read its index, not the table, whatever the planner
    /// makes of the table when it plans: empty (a connection's cached plan
    /// outlives that), churned without statistics, or analyzed.
    #[test]
    fn whether_a_message_is_queued_is_read_from_the_index_however_the_inbox_churned() {
        let server = PostgresServer::shared();
        let (url, _store) = super::fresh_database();
        let churn = "INSERT INTO inbox (instance_id, message)
                     SELECT 'counter-' || (n % 1000), '{\"event\": \"incr\"}'
                       FROM generate_series(1, 40000) AS n;
                     DELETE FROM inbox WHERE seq % 100 <> 0;";
        let questions = [
            ("queued", crate::episode::QUEUED),
            ("unread", crate::episode::QUEUED_UNREAD),
        ];
        for (before, mode) in [
            ("", "force_generic_plan"),
            (churn, "force_generic_plan"),
            ("", "force_custom_plan"),
            ("ANALYZE;", "force_generic_plan"),
            ("", "force_custom_plan"),
        ] {
            server.query(&url, before).unwrap();
            for (name, question) in questions {
                let plan = server
                    .query(
                        &url,
                        &format!(
                            "SET plan_cache_mode = {mode};
                             PREPARE {name}(text, bigint[]) AS SELECT {question};
                             EXPLAIN EXECUTE {name}('counter-7', '{{1, 2}}');
                             DEALLOCATE {name}"
                        ),
                    )
                    .unwrap()
                    .join("\n");
                assert!(
                    !plan.contains("Seq Scan on inbox"),
                    "{name} after {before:?}, {mode}:\n{plan}"
                );
            }
        }
    }
}
