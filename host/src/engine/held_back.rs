//! Suspended instances with nothing to do until a message that acts while
//! suspended arrives.
//!
//! A suspended instance holds its events and results in its inbox until a
//! resume. A pass that finds nothing to do and nothing that would end the
//! suspension (its read brings a resume or termination from beyond its
//! batch, if one is queued: `WorkRead::max_messages`) marks the instance
//! here; an event this host then queues for it does not start another
//! pass, which would only read a batch of held events again. A message
//! that acts while suspended (resume, terminate, suspend, rewind) starts a
//! pass as always, and so does every other cause (a wake-up from another
//! host, the poll, a restart, a redeploy): each pass forgets the mark
//! first, and marks again only if it again finds nothing to do. So a flood
//! of events to a suspended instance costs a pass or two, not one per
//! event.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::model::Message;

/// Instances marked at most; beyond, passes run as without marks.
const MARKED: usize = 100_000;

#[derive(Default)]
pub(super) struct HeldBack {
    marked: Mutex<HashSet<String>>,
}

impl HeldBack {
    /// `id` is suspended, and nothing it has queued ends that.
    pub(super) fn mark(&self, id: &str) {
        let mut marked = self.marked.lock().unwrap_or_else(|e| e.into_inner());
        if marked.len() < MARKED {
            marked.insert(id.to_owned());
        }
    }

    /// A pass for `id` begins: whatever it finds decides anew.
    pub(super) fn forget(&self, id: &str) {
        let mut marked = self.marked.lock().unwrap_or_else(|e| e.into_inner());
        marked.remove(id);
    }

    /// Whether `message`, just queued for `id`, waits without a pass.
    pub(super) fn holds(&self, id: &str, message: &Message) -> bool {
        !message.acts_while_suspended()
            && self
                .marked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Message {
        Message::Event {
            name: "e".into(),
            payload: "1".into(),
            accepted_at: 0,
        }
    }

    #[test]
    fn a_marked_instance_holds_events_until_a_pass_forgets_it() {
        let held = HeldBack::default();
        assert!(!held.holds("a", &event()), "nothing marked");
        held.mark("a");
        assert!(held.holds("a", &event()));
        assert!(!held.holds("b", &event()), "another instance");
        let resume = Message::Resume { reason: "r".into() };
        assert!(!held.holds("a", &resume), "a resume always starts a pass");
        held.forget("a");
        assert!(!held.holds("a", &event()));
    }
}
