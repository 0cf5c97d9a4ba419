//! The store contract, on a real PostgreSQL server started for the test
//! run (`reprise-testing-postgres`), a fresh database per test.

use reprise_testing_postgres::PostgresServer;

use super::PostgresStore;

fn store() -> ((), PostgresStore) {
    let url = PostgresServer::shared()
        .create_database()
        .expect("can create a database");
    (
        (),
        PostgresStore::open(&url, super::Options::default()).expect("can open the store"),
    )
}

mod conformance {
    reprise_core::store_conformance_tests!(super::store);
}

mod hosts {
    use std::time::Duration;

    use reprise_core::conformance::new_instance;
    use reprise_core::model::{Message, RuntimeStatus};
    use reprise_core::store::{CommitOutcome, EpisodeCommit, StartOutcome, Store, WorkRead};
    use reprise_testing_postgres::PostgresServer;

    use crate::{Options, PostgresStore};

    /// Two hosts on one fresh database, with leases long enough that only
    /// the test ends one.
    fn two_hosts() -> (PostgresStore, PostgresStore) {
        let url = PostgresServer::shared().create_database().unwrap();
        let options = Options {
            lease_ttl: Duration::from_secs(60),
        };
        (
            PostgresStore::open(&url, options).unwrap(),
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

    #[test]
    fn a_suspended_instance_is_polled_only_once_something_can_wake_it() {
        let (a, b) = two_hosts();
        a.start_instance(&new_instance("x"), None).unwrap();
        let mut suspend = episode(&a, "x");
        suspend.updated.status = RuntimeStatus::Suspended;
        assert!(matches!(
            a.commit_episode(&suspend).unwrap(),
            CommitOutcome::Committed(_)
        ));
        a.raise_event("x", "held", "1", 3).unwrap();
        // Held for a resume: not worth an episode on every poll.
        assert!(a.unowned_work(10).unwrap().is_empty());
        let resume = Message::Resume {
            reason: "go".into(),
        };
        a.deliver("x", &resume, None).unwrap();
        assert_eq!(a.unowned_work(10).unwrap(), ["x"]);
        // Another live host's instance is never the other's work.
        assert!(b.unowned_work(10).unwrap().is_empty());
    }
}
