//! Where the floor keeps a timer it creates only when something is not ready.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::time::{Instant, Sleep};

/// Where the floor keeps a timer it creates only when something is not ready: inline
/// (`Option<Sleep>`, as the preset does) or boxed (`Option<Pin<Box<Sleep>>>`: smaller to move,
/// one allocation when created).
pub trait TimerSlot: Default {
    /// Whether the timer was created.
    fn is_armed(&self) -> bool;
    /// Creates the timer at `at`, or moves it there.
    fn arm(self: Pin<&mut Self>, at: Instant);
    /// Polls the timer (`Pending` when there is none).
    fn poll_armed(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

impl TimerSlot for Option<Sleep> {
    fn is_armed(&self) -> bool {
        self.is_some()
    }

    fn arm(mut self: Pin<&mut Self>, at: Instant) {
        match self.as_mut().as_pin_mut() {
            Some(sleep) => sleep.reset(at),
            None => self.set(Some(tokio::time::sleep_until(at))),
        }
    }

    fn poll_armed(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.as_pin_mut()
            .map_or(Poll::Pending, |sleep| sleep.poll(cx))
    }
}

impl TimerSlot for Option<Pin<Box<Sleep>>> {
    fn is_armed(&self) -> bool {
        self.is_some()
    }

    fn arm(self: Pin<&mut Self>, at: Instant) {
        let slot = self.get_mut();
        match slot {
            Some(sleep) => sleep.as_mut().reset(at),
            None => *slot = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn poll_armed(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut()
            .as_mut()
            .map_or(Poll::Pending, |sleep| sleep.as_mut().poll(cx))
    }
}
