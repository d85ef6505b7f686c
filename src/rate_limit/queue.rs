//! The waiting queue: first come, first served, released one per spacing.
//!
//! Every request that may not go at once takes a *place*. A place is not a time: a waiter's
//! send time follows from how many live places are ahead of it, when the gate opens, and the
//! pace at that moment. So
//!
//! - a caller that goes away gives its place back, and everyone behind it moves up (no
//!   phantom slots that hold newcomers behind nobody);
//! - a faster pace reaches every waiter, in order, and a slower one too (nobody keeps a slot
//!   from an old pace);
//! - a closure or a breaker spell moves the whole queue without reordering it, and the release
//!   after any reopening is paced, because a release is only ever granted to a waiter whose
//!   computed time has come, and each release pushes the next one a spacing later.
//!
//! Places are handed out in increasing order and kept sorted, so a waiter's rank is a binary
//! search; releases come mostly from the front.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use crate::time;

/// How much faster the pace must get, relative to the one waiters were quoted, before they are
/// woken to be re-paced (15 %: the old pace would hold the sending rate back noticeably).
const REPACE_BELOW: f64 = 0.87;

/// The queue of waiting requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Queue {
    next_place: u64,
    /// Live places, ascending.
    places: VecDeque<u64>,
    /// The earliest the next release may happen (a spacing after the last one).
    next_release: Option<Instant>,
    /// The widest spacing quoted to waiters since they were last woken.
    quoted: Duration,
}

impl Queue {
    /// Waiters in the queue.
    pub(crate) fn len(&self) -> usize {
        self.places.len()
    }

    /// Nobody waits and no paced release is pending at `now`.
    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        self.places.is_empty() && self.next_release.is_none_or(|t| t <= now)
    }

    /// How many live places are ahead of `place`, if it is live.
    pub(crate) fn rank(&self, place: u64) -> Option<usize> {
        self.places.binary_search(&place).ok()
    }

    /// Whether `place` is the last live place.
    pub(crate) fn is_last(&self, place: u64) -> bool {
        self.places.back() == Some(&place)
    }

    /// When the waiter `rank` places from the front may go: not before `open_at` nor `now`,
    /// not before a spacing after the last release, and a spacing per place ahead.
    pub(crate) fn slot(
        &self,
        rank: usize,
        open_at: Instant,
        now: Instant,
        spacing: Duration,
    ) -> Instant {
        let start = open_at.max(now).max(self.next_release.unwrap_or(now));
        let ahead = u32::try_from(rank).unwrap_or(u32::MAX);
        time::after(start, spacing.saturating_mul(ahead))
    }

    /// Takes the last place, quoting `spacing`.
    pub(crate) fn join(&mut self, spacing: Duration) -> u64 {
        let place = self.next_place;
        self.next_place += 1;
        self.places.push_back(place);
        self.quote(spacing);
        place
    }

    /// A waiter was told a time computed with `spacing`.
    pub(crate) fn quote(&mut self, spacing: Duration) {
        self.quoted = self.quoted.max(spacing);
    }

    /// Gives `place` back. `Some(true)` when someone waited behind it (their times moved up),
    /// `None` when it was not live.
    pub(crate) fn leave(&mut self, place: u64) -> Option<bool> {
        let index = self.rank(place)?;
        self.places.remove(index);
        // A crowd that went away gives its memory back.
        let (len, capacity) = (self.places.len(), self.places.capacity());
        if capacity > 64 && len < capacity / 4 {
            self.places.shrink_to(len * 2);
        }
        Some(index < len)
    }

    /// Releases `place` (or a newcomer without one) at `now`: the next release comes a
    /// spacing after this one's scheduled time if it came less than half a spacing late (a
    /// timer's lateness does not slow the pace down), else a spacing after `now`.
    pub(crate) fn release(&mut self, place: Option<u64>, now: Instant, spacing: Duration) {
        if let Some(place) = place {
            self.leave(place);
        }
        let scheduled = match self.next_release {
            Some(t) if t >= now => t,
            Some(t) if now - t < spacing / 2 => t,
            _ => now,
        };
        self.next_release = Some(time::after(scheduled, spacing));
    }

    /// The release may start at once (a new pace, after the breaker closed).
    pub(crate) fn restart(&mut self) {
        self.next_release = None;
    }

    /// Whether `spacing` is enough faster than what waiters were quoted that they should be
    /// woken to ask again; if so, the quote is reset to it.
    pub(crate) fn repace(&mut self, spacing: Duration) -> bool {
        if self.places.is_empty() {
            return false;
        }
        if spacing.as_secs_f64() < REPACE_BELOW * self.quoted.as_secs_f64() {
            self.quoted = spacing;
            return true;
        }
        false
    }

    /// Forgets a release time that has passed.
    pub(crate) fn settle(&mut self, now: Instant) {
        if self.next_release.is_some_and(|t| t <= now) {
            self.next_release = None;
        }
        if self.places.is_empty() {
            self.quoted = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ranks_follow_live_places_in_order() {
        let mut q = Queue::default();
        let places: Vec<u64> = (0..5).map(|_| q.join(ms(20))).collect();
        assert_eq!(q.rank(places[3]), Some(3));
        assert_eq!(q.leave(places[1]), Some(true));
        assert_eq!(q.rank(places[3]), Some(2), "moved up");
        assert_eq!(q.leave(places[1]), None, "given back once");
        assert_eq!(q.leave(places[4]), Some(false), "nobody behind the last");
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn releases_are_a_spacing_apart_whoever_asks() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        let a = q.join(ms(20));
        let b = q.join(ms(20));
        assert_eq!(q.slot(0, t0 + ms(100), t0, ms(20)), t0 + ms(100));
        assert_eq!(q.slot(1, t0 + ms(100), t0, ms(20)), t0 + ms(120));
        q.release(Some(a), t0 + ms(100), ms(20));
        // `b` asking at the same instant (woken early) is told to wait its spacing.
        let rank = q.rank(b).unwrap_or(usize::MAX);
        assert_eq!(q.slot(rank, t0, t0 + ms(100), ms(20)), t0 + ms(120));
        q.release(Some(b), t0 + ms(120), ms(20));
        q.settle(t0 + ms(200));
        assert!(q.is_idle(t0 + ms(200)));
    }

    #[test]
    fn a_slightly_late_release_keeps_the_schedule() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.release(None, t0, ms(20));
        // A timer firing 3 ms late does not push the next release back...
        q.release(None, t0 + ms(23), ms(20));
        assert_eq!(q.slot(0, t0, t0 + ms(23), ms(20)), t0 + ms(40));
        // ...but after an idle spell the schedule starts again from now (no burst).
        q.release(None, t0 + ms(500), ms(20));
        assert_eq!(q.slot(0, t0, t0 + ms(500), ms(20)), t0 + ms(520));
    }

    #[test]
    fn a_faster_pace_wakes_the_queue_once() {
        let mut q = Queue::default();
        q.join(ms(200));
        assert!(!q.repace(ms(180)));
        assert!(q.repace(ms(100)));
        assert!(!q.repace(ms(100)), "already quoted");
    }

    #[test]
    fn huge_spacings_and_ranks_saturate() {
        let q = Queue::default();
        let t0 = Instant::now();
        let at = q.slot(usize::MAX, t0, t0, Duration::MAX);
        assert!(at > t0);
    }
}
