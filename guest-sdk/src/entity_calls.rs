//! What an orchestrator does with entities: signals (fire and forget),
//! calls (awaited like activities) and locks (critical sections).
//!
//! A lock is a task like any other (numbered in scheduling order), but its
//! end is an action of its own, `unlock-entities`, taken when the
//! [`CriticalSection`] is released or dropped. At most one lock is open at
//! a time, as the WIT contract requires, so the state of "the" lock is one
//! field of the execution's state.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::State;
use crate::tasks::TaskSlot;
use crate::wire::{Action, CallEntity, LockEntities, SignalEntity};
use crate::{EntityId, Error, OrchestrationContext, TaskCall};

/// The lock task of the execution, if one is open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockState {
    #[default]
    Free,
    /// Requested as task `id`, not granted yet. `abandoned` once nobody
    /// waits for it: it is released as soon as it is granted.
    Requested { id: u64, abandoned: bool },
    /// Granted: the instance holds the entities.
    Held,
}

impl State {
    /// Applies `entities-locked(id)`; returns whether a waiter may progress.
    pub(crate) fn lock_granted(&mut self, id: u64) -> bool {
        match self.lock {
            LockState::Requested {
                id: requested,
                abandoned: false,
            } if requested == id => {
                self.lock = LockState::Held;
                self.complete_task(id, Ok("null".to_owned()))
            }
            LockState::Requested {
                id: requested,
                abandoned: true,
            } if requested == id => {
                self.lock = LockState::Held;
                self.release_lock();
                false
            }
            _ => false,
        }
    }

    /// Releases the entities this instance holds, if it holds any.
    fn release_lock(&mut self) {
        if self.lock != LockState::Held {
            return;
        }
        self.lock = LockState::Free;
        if !self.generation_ended {
            self.actions.push(Action::UnlockEntities);
        }
    }
}

impl OrchestrationContext {
    /// Sends operation `operation` with `input` to entity `target`; fire
    /// and forget. Signals from this instance to one entity apply in the
    /// order they were sent.
    ///
    /// ```no_run
    /// # fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use reprise_sdk::EntityId;
    /// ctx.signal_entity(&EntityId::new("Counter", "visits"), "add", 1)?;
    /// # Ok(()) }
    /// ```
    pub fn signal_entity(
        &self,
        target: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), Error> {
        let input = serde_json::to_string(&input)?;
        let signal = SignalEntity {
            target: target.to_wire(),
            operation: operation.to_owned(),
            input,
        };
        self.state()
            .borrow_mut()
            .actions
            .push(Action::SignalEntity(signal));
        Ok(())
    }

    /// Applies operation `operation` with `input` to entity `target` and
    /// waits for its result, decoded as `T`; an error if the operation
    /// failed (the entity's state is then as it was).
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use reprise_sdk::EntityId;
    /// let balance: i64 = ctx.call_entity(&EntityId::new("Account", "alice"), "balance", ()).await?;
    /// # Ok(()) }
    /// ```
    pub fn call_entity<T: DeserializeOwned>(
        &self,
        target: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> TaskCall<T> {
        let what = format!("operation '{operation}' of entity '{target}'");
        self.start_task(what, input, |id, input| {
            Action::CallEntity(CallEntity {
                id,
                target: target.to_wire(),
                operation: operation.to_owned(),
                input,
            })
        })
    }

    /// Takes `targets` for this instance alone and resolves, once the host
    /// holds them all, to a [`CriticalSection`]: until it is released (or
    /// dropped), each of these entities applies only this instance's
    /// operations, so a read followed by a write sees no one else's write
    /// in between. The targets are sorted and deduplicated (the host locks
    /// them in one global order, so overlapping locks cannot deadlock).
    ///
    /// At most one lock is open at a time: asking for another while one is
    /// requested or held is an error (kind `"invalid-operation"`), and so
    /// is asking for none.
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use reprise_sdk::EntityId;
    /// let (from, to) = (EntityId::new("Account", "alice"), EntityId::new("Account", "bob"));
    /// let section = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    /// let balance: i64 = ctx.call_entity(&from, "balance", ()).await?;
    /// if balance >= 10 {
    ///     let _: i64 = ctx.call_entity(&from, "withdraw", 10).await?;
    ///     let _: i64 = ctx.call_entity(&to, "deposit", 10).await?;
    /// }
    /// section.release();
    /// # Ok(()) }
    /// ```
    pub fn lock_entities(&self, targets: &[EntityId]) -> LockFuture {
        let mut targets = targets.to_vec();
        targets.sort();
        targets.dedup();
        let request = match self.request_lock(&targets) {
            Ok((id, slot)) => Request::Pending { id, slot },
            Err(error) => Request::Refused(Some(error)),
        };
        LockFuture {
            state: Rc::clone(self.state()),
            targets,
            request,
        }
    }

    fn request_lock(&self, targets: &[EntityId]) -> Result<(u64, Rc<TaskSlot>), Error> {
        let mut state = self.state().borrow_mut();
        if targets.is_empty() {
            return Err(invalid_operation("lock_entities needs at least one entity"));
        }
        if state.lock != LockState::Free {
            return Err(invalid_operation(
                "a lock is already open: release its critical section before locking again",
            ));
        }
        let (id, slot) = state.schedule();
        state.lock = LockState::Requested {
            id,
            abandoned: false,
        };
        state.actions.push(Action::LockEntities(LockEntities {
            id,
            targets: targets.iter().map(EntityId::to_wire).collect(),
        }));
        Ok((id, slot))
    }
}

fn invalid_operation(message: &str) -> Error {
    Error::new(message)
        .with_kind("invalid-operation")
        .non_retryable()
}

/// The future [`OrchestrationContext::lock_entities`] returns.
///
/// Dropping it before the lock is granted abandons the lock: the entities
/// are released as soon as the host grants it (and until then no other
/// lock may be taken).
#[must_use = "a lock does nothing unless awaited"]
#[derive(Debug)]
pub struct LockFuture {
    state: Rc<RefCell<State>>,
    targets: Vec<EntityId>,
    request: Request,
}

#[derive(Debug)]
enum Request {
    Pending {
        id: u64,
        slot: Rc<TaskSlot>,
    },
    /// Never requested; the error until handed out.
    Refused(Option<Error>),
    /// Handed out as a critical section.
    Granted,
}

impl Future for LockFuture {
    type Output = Result<CriticalSection, Error>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.request {
            Request::Refused(error) => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
            Request::Granted => panic!("polled after completion"),
            Request::Pending { slot, .. } => {
                if slot.result.borrow().is_none() {
                    return Poll::Pending;
                }
                this.request = Request::Granted;
                Poll::Ready(Ok(CriticalSection {
                    state: Rc::clone(&this.state),
                    targets: std::mem::take(&mut this.targets),
                }))
            }
        }
    }
}

impl Drop for LockFuture {
    fn drop(&mut self) {
        let Request::Pending { id, slot } = &self.request else {
            return;
        };
        let mut state = self.state.borrow_mut();
        if slot.result.borrow().is_some() {
            // Granted, but nobody took the critical section.
            state.release_lock();
            return;
        }
        state.tasks.remove(id);
        if let LockState::Requested { abandoned, .. } = &mut state.lock {
            *abandoned = true;
        }
    }
}

/// The entities of a granted [`lock_entities`](OrchestrationContext::lock_entities),
/// held by this instance until [`release`](Self::release)d or dropped
/// (which takes the `unlock-entities` action), or until the generation ends
/// (the host releases them then).
#[must_use = "dropping a critical section releases its entities at once"]
#[derive(Debug)]
pub struct CriticalSection {
    state: Rc<RefCell<State>>,
    targets: Vec<EntityId>,
}

impl CriticalSection {
    /// The locked entities, sorted.
    pub fn entities(&self) -> &[EntityId] {
        &self.targets
    }

    /// Releases the entities now (as dropping the section does).
    pub fn release(self) {}
}

impl Drop for CriticalSection {
    fn drop(&mut self) {
        self.state.borrow_mut().release_lock();
    }
}
