//! Waiting on several things at once: fan-out/fan-in and races.
//!
//! Futures are polled in the order given, so which one "wins" a race that
//! two events settle at once is the same on every replay.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One of two outcomes, from [`when_either`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Waits for all `futures` and returns their outputs in the order given.
///
/// ```no_run
/// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
/// use std::time::Duration;
/// // Three timers running at once: done after the longest, 3 seconds.
/// let timers = [1, 2, 3].map(|seconds| ctx.sleep(Duration::from_secs(seconds)));
/// reprise_sdk::when_all(timers).await;
/// # Ok(()) }
/// ```
pub async fn when_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    WhenAll {
        futures: futures
            .into_iter()
            .map(|future| Some(Box::pin(future)))
            .collect(),
        outputs: Vec::new(),
    }
    .await
}

struct WhenAll<F: Future> {
    futures: Vec<Option<Pin<Box<F>>>>,
    outputs: Vec<Option<F::Output>>,
}

// Outputs are moved, never pinned; the futures are boxed.
impl<F: Future> Unpin for WhenAll<F> {}

impl<F: Future> Future for WhenAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.outputs.len() < this.futures.len() {
            this.outputs.resize_with(this.futures.len(), || None);
        }
        for (slot, output) in this.futures.iter_mut().zip(this.outputs.iter_mut()) {
            if let Some(future) = slot
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *output = Some(value);
                *slot = None;
            }
        }
        if this.futures.iter().all(Option::is_none) {
            Poll::Ready(
                this.outputs
                    .drain(..)
                    .map(|output| output.expect("every future finished"))
                    .collect(),
            )
        } else {
            Poll::Pending
        }
    }
}

/// Waits for the first of `futures` to finish; returns its index and output.
/// The others are dropped: an abandoned event wait gives its event to the
/// next wait, an abandoned timer is cancelled.
///
/// # Panics
///
/// If `futures` is empty: nothing could ever finish first.
pub async fn when_any<F: Future>(futures: impl IntoIterator<Item = F>) -> (usize, F::Output) {
    let futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    assert!(!futures.is_empty(), "when_any needs at least one future");
    WhenAny { futures }.await
}

struct WhenAny<F> {
    futures: Vec<Pin<Box<F>>>,
}

impl<F: Future> Future for WhenAny<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for (index, future) in this.futures.iter_mut().enumerate() {
            if let Poll::Ready(value) = future.as_mut().poll(cx) {
                this.futures.clear();
                return Poll::Ready((index, value));
            }
        }
        Poll::Pending
    }
}

/// Waits for whichever of two different futures finishes first, e.g. an
/// approval event against a deadline. If both are ready, `a` wins.
///
/// ```no_run
/// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
/// use std::time::Duration;
/// use reprise_sdk::{Either, when_either};
/// let approval = ctx.wait_for_event::<bool>("approval");
/// let deadline = ctx.sleep(Duration::from_secs(3600));
/// match when_either(approval, deadline).await {
///     Either::Left(approved) => println!("approved: {}", approved?),
///     Either::Right(()) => println!("timed out"),
/// }
/// # Ok(()) }
/// ```
pub async fn when_either<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = Box::pin(a);
    let mut b = Box::pin(b);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(value));
        }
        if let Poll::Ready(value) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(value));
        }
        Poll::Pending
    })
    .await
}
