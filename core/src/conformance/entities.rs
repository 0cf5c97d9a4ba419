//! Entities: rows created by the first message for them, kept out of the
//! instance counts and queries, and reached by episodes' messages in order.

use super::{episode, new_instance, seqs, start, work};
use crate::entity::{EntityId, EntityRecord};
use crate::model::{Message, RuntimeStatus};
use crate::store::{
    CommitOutcome, DeliveryOutcome, HistoryChange, InstanceFilter, InstanceKind, Store,
};

fn operation(name: &str) -> Message {
    Message::EntityOperation {
        operation: name.into(),
        input: "1".into(),
        sender: None,
        accepted_at: 5,
    }
}

/// A message for an entity creates its row (named by its ID); any other
/// message to an ID with no row is refused. Entities are neither counted
/// nor listed among the instances, only when a query asks for them.
pub fn a_message_for_an_entity_creates_its_row_and_it_is_not_an_instance(store: &dyn Store) {
    let id = EntityId::new("Counter", "a").instance_id();
    let event = Message::Event {
        name: "e".into(),
        payload: "1".into(),
        accepted_at: 5,
    };
    let (refused, _) = store.deliver("@counter@b", &event, None).unwrap();
    assert_eq!(refused, DeliveryOutcome::NotFound);
    assert!(store.instance("@counter@b").unwrap().is_none());

    let (accepted, _) = store.deliver(&id, &operation("add"), None).unwrap();
    assert_eq!(accepted, DeliveryOutcome::Accepted);
    let (again, _) = store.deliver(&id, &operation("incr"), None).unwrap();
    assert_eq!(again, DeliveryOutcome::Accepted, "the row is created once");
    let read = work(store, &id);
    assert_eq!(read.instance.name, "counter");
    let names: Vec<Message> = read
        .messages
        .into_iter()
        .map(|queued| queued.message)
        .collect();
    assert_eq!(names, [operation("add"), operation("incr")]);

    start(store, &new_instance("orchestration"));
    assert_eq!(
        store.instance_counts().unwrap(),
        [(RuntimeStatus::Pending, 1)],
        "entities are not counted"
    );
    let listed = |kind| {
        let filter = InstanceFilter {
            kind,
            ..InstanceFilter::default()
        };
        let page = store.query_instances(&filter, None, 10).unwrap();
        page.into_iter()
            .map(|instance| instance.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(InstanceKind::Orchestrations), ["orchestration"]);
    assert_eq!(listed(InstanceKind::Entities), [id]);
}

/// An episode's messages reach their targets in the order it sent them,
/// creating the entities among them; an entity's episode replaces its one
/// history entry, its record.
pub fn an_episodes_messages_reach_entities_in_order_and_an_entity_keeps_one_record(
    store: &dyn Store,
) {
    start(store, &new_instance("o"));
    let read = work(store, "o");
    let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
    let entity = EntityId::new("counter", "x").instance_id();
    let answer = Message::EntityCallDone {
        generation: 0,
        id: 1,
        result: Ok("1".into()),
    };
    commit.messages = vec![
        (entity.clone(), operation("first")),
        ("gone".into(), answer.clone()),
        (entity.clone(), operation("second")),
    ];
    let CommitOutcome::Committed(follow_up) = store.commit_episode(&commit).unwrap() else {
        panic!("the commit was refused");
    };
    assert!(follow_up.notify.contains(&entity), "{follow_up:?}");
    // A message for a missing orchestration goes nowhere.
    assert!(store.instance("gone").unwrap().is_none());

    for (round, state) in ["1", "2"].into_iter().enumerate() {
        let read = work(store, &entity);
        if round == 0 {
            let names: Vec<Message> = read.messages.iter().map(|q| q.message.clone()).collect();
            assert_eq!(names, [operation("first"), operation("second")]);
        }
        let record = EntityRecord {
            state: Some(state.into()),
            last_operation: 7,
            ..EntityRecord::from_history(&read.history)
        };
        let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(&read));
        commit.history = HistoryChange::Replace(vec![record.into_entry()]);
        assert!(matches!(
            store.commit_episode(&commit).unwrap(),
            CommitOutcome::Committed(_)
        ));
        // Something for the next round to read.
        store.deliver(&entity, &operation("next"), None).unwrap();
    }
    let (_, history) = store.instance_with_history(&entity).unwrap().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        EntityRecord::from_history(&history).state.as_deref(),
        Some("2")
    );
}

/// An entity's commit that leaves it empty deletes its row, unless a
/// message waits for it; a message afterwards creates it anew.
pub fn an_empty_entity_is_removed_unless_a_message_waits_for_it(store: &dyn Store) {
    let entity = EntityId::new("counter", "gone").instance_id();
    store.deliver(&entity, &operation("delete"), None).unwrap();
    let empty_commit = |read: &crate::store::WorkItem| {
        let mut commit = episode(&read.instance, RuntimeStatus::Running, seqs(read));
        commit.history = HistoryChange::Replace(vec![EntityRecord::default().into_entry()]);
        commit.removes_empty_entity = true;
        commit
    };
    let read = work(store, &entity);
    // Arrived after the episode read its messages: the row stays for it.
    store.deliver(&entity, &operation("add"), None).unwrap();
    assert!(matches!(
        store.commit_episode(&empty_commit(&read)).unwrap(),
        CommitOutcome::Committed(_)
    ));
    assert!(store.instance(&entity).unwrap().is_some());

    let read = work(store, &entity);
    assert_eq!(read.messages.len(), 1);
    assert!(matches!(
        store.commit_episode(&empty_commit(&read)).unwrap(),
        CommitOutcome::Committed(_)
    ));
    assert!(store.instance(&entity).unwrap().is_none(), "removed");
    assert!(
        store
            .load_work(&entity, crate::store::WorkRead::ALL)
            .unwrap()
            .is_none()
    );

    store.deliver(&entity, &operation("add"), None).unwrap();
    let read = work(store, &entity);
    assert_eq!(read.instance.revision, 0, "a new row");
    assert!(read.history.is_empty());
}
