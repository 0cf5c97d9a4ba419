//! What the test answers when the orchestrator calls an activity or starts
//! a sub-orchestration: one scripted responder per name.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::activity::run_activity;
use crate::wire::Failure;
use crate::{ActivityContext, Error};

/// JSON input in, JSON output or a failure out, as on the wire.
type Responder = Box<dyn FnMut(&str, ActivityContext) -> Result<String, Failure>>;

/// Which kind of call a [`Script`] answers, for its messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum CallKind {
    Activity,
    SubOrchestration,
}

impl CallKind {
    fn noun(self) -> &'static str {
        match self {
            CallKind::Activity => "activity",
            CallKind::SubOrchestration => "sub-orchestration",
        }
    }

    /// The builder methods that script this kind of call.
    fn how_to_script(self) -> &'static str {
        match self {
            CallKind::Activity => {
                "`activity`, `activity_result`, `activity_error` or `activity_failure`"
            }
            CallKind::SubOrchestration => {
                "`sub_orchestration`, `sub_orchestration_result`, `sub_orchestration_error` or \
                 `sub_orchestration_failure`"
            }
        }
    }
}

/// The scripted answers for one kind of call, by name (exact match, as the
/// host looks functions up).
pub(super) struct Script {
    kind: CallKind,
    responders: BTreeMap<String, Responder>,
}

impl Script {
    pub(super) fn new(kind: CallKind) -> Script {
        Script {
            kind,
            responders: BTreeMap::new(),
        }
    }

    /// Answers calls to `name` with `function`, run in-process as the host
    /// would run it: input decoded, output encoded, error as a failure (an
    /// [`Error`] keeps its kind), the call's context current while it runs.
    pub(super) fn function<F, T, U, E>(&mut self, name: &str, mut function: F)
    where
        F: FnMut(T) -> Result<U, E> + 'static,
        T: DeserializeOwned,
        U: Serialize,
        E: std::fmt::Display + 'static,
    {
        let responder = move |input: &str, context| run_activity(&mut function, input, context);
        self.responders.insert(name.to_owned(), Box::new(responder));
    }

    /// Answers every call to `name` with the same output.
    pub(super) fn output(&mut self, name: &str, output: impl Serialize) {
        let output = super::to_json(output, &format!("output scripted for '{name}'"));
        self.responders
            .insert(name.to_owned(), Box::new(move |_, _| Ok(output.clone())));
    }

    /// Fails every call to `name` with `error`.
    pub(super) fn error(&mut self, name: &str, error: Error) {
        let failure = error.into_failure();
        self.responders
            .insert(name.to_owned(), Box::new(move |_, _| Err(failure.clone())));
    }

    /// The scripted answer to a call of `name` with `input`.
    ///
    /// # Panics
    ///
    /// If nothing is scripted for `name`: the test forgot it, or the
    /// orchestrator calls something it should not.
    pub(super) fn answer(
        &mut self,
        name: &str,
        input: &str,
        context: ActivityContext,
    ) -> Result<String, Failure> {
        let kind = self.kind;
        let Some(responder) = self.responders.get_mut(name) else {
            panic!(
                "the orchestrator called {noun} '{name}' with input {input}, but the test \
                 scripted no {noun} of that name (scripted: {scripted:?}); script it with {how}",
                noun = kind.noun(),
                scripted = self.responders.keys().collect::<Vec<_>>(),
                how = kind.how_to_script(),
            );
        };
        responder(input, context)
    }
}
