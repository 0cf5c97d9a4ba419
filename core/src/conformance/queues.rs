//! Activities and timers.

use std::time::{Duration, Instant};

use super::{episode, finish, new_instance, seqs, start, work};
use crate::model::{Failure, HistoryEntry, Message, Millis, RuntimeStatus, now_millis};
use crate::store::{
    ActivityLease, Applied, CommitOutcome, EpisodeCommit, FollowUp, HistoryChange,
    LeasedActivities, ScheduledActivity, Store, StoreCounts, WorkRead,
};

/// How long [`schedule_two_activities`] leases its first activity: a
/// store several hosts share measures it on its own clock, so the tests
/// wait it out, with real times.
const LEASE: Millis = 50;
/// A time after every lease of these tests ends (but the hour-long ones).
const LATER: Millis = 30 * 60 * 1_000;
/// An hour: longer than any test runs.
const HOUR: Millis = 60 * 60 * 1_000;

/// The first `lease.count` activities of a commit are leased as they are
/// inserted and returned to it; a claim sees them only once the lease
/// expires.
pub fn activities_leased_in_their_commit_are_returned_and_left_to_no_one_else(store: &dyn Store) {
    start(store, &new_instance("a"));
    let now = now_millis();
    let follow_up = schedule_two_activities(store, "a", Vec::new(), now);
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
    let claimed = store.claim_activities(now + LEASE - 1, HOUR, 10).unwrap();
    assert_eq!(
        claimed.iter().map(|work| work.task_id).collect::<Vec<_>>(),
        [2]
    );
    let expired = eventually(|| {
        let claimed = store.claim_activities(now + LATER, HOUR, 10).unwrap();
        (!claimed.is_empty()).then_some(claimed)
    });
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

/// A commit whose outcome is unknown may have leased activities that no
/// worker runs: `release_lost_leases` frees them for a claim at once, but
/// never a lease another commit or a claim took.
pub fn leases_of_a_commit_whose_outcome_is_unknown_are_released_but_no_later_lease(
    store: &dyn Store,
) {
    start(store, &new_instance("a"));
    let now = now_millis();
    let lease = ActivityLease {
        count: 2,
        from: now,
        length: HOUR,
    };
    let (commit, follow_up) = commit_two_activities(store, "a", Vec::new(), lease);
    assert_eq!(follow_up.leased.len(), 2);
    let leased = LeasedActivities::of(&commit).expect("the commit leases");
    assert_eq!(leased.task_ids, [1, 2]);

    // Another commit's lease (a retry's, say): not these.
    let other = LeasedActivities {
        from: now - 1,
        ..leased.clone()
    };
    assert_eq!(store.release_lost_leases(&other).unwrap(), 0);
    assert!(store.claim_activities(now, HOUR, 10).unwrap().is_empty());

    // This commit's: both are released, and a claim takes them.
    assert_eq!(store.release_lost_leases(&leased).unwrap(), 2);
    let mut claimed = store.claim_activities(now, HOUR, 10).unwrap();
    claimed.sort_by_key(|work| work.task_id);
    assert_eq!(claimed, follow_up.leased);
    // Leased again, to a worker that runs them: a second release frees none.
    assert_eq!(store.release_lost_leases(&leased).unwrap(), 0);
}

/// `complete_activity` records the result and removes the activity in one
/// transaction, and records nothing (`None`) once it is gone: completed
/// already, or its generation ended.
pub fn an_activity_result_is_recorded_at_most_once_and_not_after_its_generation_ended(
    store: &dyn Store,
) {
    start(store, &new_instance("a"));
    let read = work(store, "a");
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.activities = vec![activity(1, "First", 1), activity(2, "Second", 2)];
    store.commit_episode(&commit).unwrap();
    let mut claimed = store.claim_activities(10, 100, 10).unwrap();
    claimed.sort_by_key(|work| work.task_id);
    let [first, second] = &claimed[..] else {
        panic!("expected both activities: {claimed:?}");
    };
    assert_eq!((first.task_id, second.task_id), (1, 2));
    assert_eq!((first.attempt, second.attempt), (1, 2), "attempts are kept");

    assert_eq!(
        store
            .complete_activity(first, Ok("one".into()), None)
            .unwrap(),
        Some(Applied::Queued)
    );
    // A second run of it (a lease that expired, say) records nothing.
    assert_eq!(
        store
            .complete_activity(first, Ok("again".into()), None)
            .unwrap(),
        None
    );
    let done: Vec<Message> = work(store, "a")
        .messages
        .into_iter()
        .map(|queued| queued.message)
        .collect();
    assert_eq!(
        done,
        [Message::ActivityDone {
            generation: 0,
            id: 1,
            result: Ok("one".into()),
        }]
    );

    // The instance finishes while the second runs: its result is dropped.
    finish(store, "a", RuntimeStatus::Completed);
    assert_eq!(
        store
            .complete_activity(second, Err(Failure::new(Failure::ERROR, "late")), None)
            .unwrap(),
        None
    );
    assert!(store.queued_messages("a").unwrap().is_empty());
    assert!(store.load_work("a", WorkRead::ALL).unwrap().is_none());
    // Gone from the queue, whatever its lease says.
    let counts = store.counts(now_millis()).unwrap();
    assert_eq!(
        (counts.activities_waiting, counts.activities_leased),
        (0, 0)
    );
}

/// `fire_due_timers` moves each due timer to its instance's inbox exactly
/// once; a timer of a generation that ended (continued as new, or
/// finished) never fires.
pub fn a_due_timer_fires_once_and_never_for_a_generation_that_ended(store: &dyn Store) {
    for id in ["a", "b"] {
        start(store, &new_instance(id));
        let read = work(store, id);
        let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
        commit.timers = vec![(1, 100), (2, 200)];
        store.commit_episode(&commit).unwrap();
    }
    assert_eq!(store.next_timer_due().unwrap(), Some(100));
    assert!(store.fire_due_timers(99).unwrap().is_empty());
    assert!(store.load_work("a", WorkRead::ALL).unwrap().is_none());

    let mut fired = store.fire_due_timers(100).unwrap();
    fired.sort();
    assert_eq!(fired, ["a", "b"]);
    assert!(store.fire_due_timers(150).unwrap().is_empty(), "only once");
    let read = work(store, "a");
    let messages: Vec<&Message> = read.messages.iter().map(|queued| &queued.message).collect();
    assert_eq!(
        messages,
        [&Message::TimerFired {
            generation: 0,
            id: 1,
            fire_at: 100,
        }]
    );

    // "a" continues as new (its timer 2 was generation 0's); "b" finishes.
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.updated.generation = 1;
    commit.history =
        HistoryChange::Replace(vec![HistoryEntry::OrchestratorStarted { timestamp: 2 }]);
    store.commit_episode(&commit).unwrap();
    finish(store, "b", RuntimeStatus::Completed);

    assert!(store.fire_due_timers(1_000).unwrap().is_empty());
    assert!(store.load_work("a", WorkRead::ALL).unwrap().is_none());
    assert!(store.load_work("b", WorkRead::ALL).unwrap().is_none());
}

/// A commit's `cancelled_timers` deletes them: they never fire; the
/// generation's other timers still do.
pub fn a_cancelled_timer_never_fires(store: &dyn Store) {
    start(store, &new_instance("a"));
    let read = work(store, "a");
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.timers = vec![(1, 100), (2, 100)];
    store.commit_episode(&commit).unwrap();

    let read = work_or_row(store, "a");
    let mut commit = episode(&read, RuntimeStatus::Running, Vec::new());
    commit.cancelled_timers = vec![1];
    store.commit_episode(&commit).unwrap();

    assert_eq!(store.fire_due_timers(1_000).unwrap(), ["a"]);
    let read = work(store, "a");
    let messages: Vec<&Message> = read.messages.iter().map(|queued| &queued.message).collect();
    assert_eq!(
        messages,
        [&Message::TimerFired {
            generation: 0,
            id: 2,
            fire_at: 100,
        }]
    );
}

/// The instance row of `id` as an episode would read it with nothing
/// queued.
fn work_or_row(store: &dyn Store, id: &str) -> crate::model::Instance {
    store.instance(id).unwrap().expect("the instance exists")
}

/// Activity `name` as task `task_id`, attempt `attempt`, its input the
/// task ID.
fn activity(task_id: u64, name: &str, attempt: u32) -> ScheduledActivity {
    ScheduledActivity {
        task_id,
        name: name.into(),
        input: task_id.to_string(),
        attempt,
    }
}

/// Commits `id`'s first episode: two activities, `First` leased from
/// `now` for [`LEASE`] and `Second` not, and `timers`.
fn schedule_two_activities(
    store: &dyn Store,
    id: &str,
    timers: Vec<(u64, u64)>,
    now: Millis,
) -> FollowUp {
    let lease = ActivityLease {
        count: 1,
        from: now,
        length: LEASE,
    };
    commit_two_activities(store, id, timers, lease).1
}

/// Commits an episode of `id` that schedules activities 1 ("First") and
/// 2 ("Second", a second attempt) and `timers`, under `lease`.
fn commit_two_activities(
    store: &dyn Store,
    id: &str,
    timers: Vec<(u64, u64)>,
    lease: ActivityLease,
) -> (EpisodeCommit, FollowUp) {
    let read = work(store, id);
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    commit.timers = timers;
    commit.activities = vec![activity(1, "First", 1), activity(2, "Second", 2)];
    commit.lease = lease;
    let CommitOutcome::Committed(follow_up) = store.commit_episode(&commit).unwrap() else {
        panic!("the episode was refused");
    };
    (commit, follow_up)
}

/// `counts` sees instances by status, queued messages, pending timers,
/// and activities, leased while their lease lasts.
pub fn counts_show_instances_by_status_and_what_waits(store: &dyn Store) {
    assert_eq!(store.counts(0).unwrap(), StoreCounts::default());
    start(store, &new_instance("a"));
    start(store, &new_instance("b"));
    let now = now_millis();
    schedule_two_activities(store, "a", vec![(3, 100)], now);
    let mut counts = store.counts(now + LEASE - 1).unwrap();
    counts.instances.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        counts,
        StoreCounts {
            instances: vec![(RuntimeStatus::Pending, 1), (RuntimeStatus::Running, 1)],
            messages: 1,
            timers: 1,
            activities_waiting: 1,
            activities_leased: 1,
        }
    );
    let expired = eventually(|| {
        let counts = store.counts(now + LATER).unwrap();
        (counts.activities_leased == 0).then_some(counts)
    });
    assert_eq!(expired.activities_waiting, 2);
}

/// What `check` returns once it returns something, asked again until it
/// does (for at most ten seconds).
fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let began = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "not within ten seconds"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
