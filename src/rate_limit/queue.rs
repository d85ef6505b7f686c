//! The waiting queue: in priority order, released one per spacing.
//!
//! Every request that may not go at once takes a *place*. A place is the request's virtual
//! finish tag under weighted fair queueing (see [`Priority`](super::Priority)), with an arrival
//! number below it: within one workload, and under [`Priority::Fifo`](super::Priority::Fifo),
//! places are first come, first served; a request of a heavier workload takes a place ahead of
//! the lighter ones that wait. A place is not a time: a waiter's
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
//! Places are kept sorted, so a waiter's rank is a binary search; releases come mostly from
//! the front.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use super::priority::Lane;
use crate::time;

/// The low bits of a place: its arrival number, so places with one tag stay distinct and in
/// arrival order.
const ARRIVAL_BITS: u32 = 20;
const ARRIVAL_MASK: u64 = (1 << ARRIVAL_BITS) - 1;
/// The largest tag a place can carry (2^36 releases of the lightest weight).
const MAX_TAG: u64 = u64::MAX >> ARRIVAL_BITS;
/// The lanes a queue tracks (one per workload).
const LANES: usize = crate::Workload::COUNT;

/// How much faster the pace must get, relative to the one waiters were quoted, before they are
/// woken to be re-paced (15 %: the old pace would hold the sending rate back noticeably).
const REPACE_BELOW: f64 = 0.87;

/// The queue of waiting requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Queue {
    /// Arrivals so far (the low bits of the next place).
    arrivals: u64,
    /// The virtual time: the tag of the last waiter released.
    virtual_time: u64,
    /// Each lane's last tag handed out.
    last_tag: [u64; LANES],
    /// Live places, ascending.
    places: VecDeque<u64>,
    /// Each live place's estimated tokens, in the same order.
    costs: VecDeque<u64>,
    /// The sum of `costs`.
    queued_tokens: u64,
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

    /// The mean estimated tokens of the waiters, if any wait: what a place ahead costs on
    /// average, which spaces the queue while the gate paces by tokens.
    pub(crate) fn mean_tokens(&self) -> Option<u64> {
        let len = self.places.len() as u64;
        (len > 0).then(|| self.queued_tokens / len)
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

    /// The tag a newcomer of `lane` would get: its lane's last tag, or the virtual time if
    /// later, plus its step.
    fn tag_for(&self, lane: Lane) -> u64 {
        let last = self.last_tag[lane.class % LANES];
        last.max(self.virtual_time)
            .saturating_add(lane.step)
            .min(MAX_TAG)
    }

    /// How many live places would be ahead of a newcomer of `lane`.
    pub(crate) fn rank_of_newcomer(&self, lane: Lane) -> usize {
        let tag = self.tag_for(lane);
        self.places.partition_point(|&p| p >> ARRIVAL_BITS <= tag)
    }

    /// Takes a place for a newcomer of `lane` (behind every place of its lane and every place
    /// with a lower tag), quoting `spacing`.
    pub(crate) fn join(&mut self, lane: Lane, spacing: Duration, tokens: u64) -> u64 {
        let tag = self.tag_for(lane);
        let mut place = (tag << ARRIVAL_BITS) | (self.arrivals & ARRIVAL_MASK);
        self.arrivals = self.arrivals.wrapping_add(1);
        // Arrival numbers wrap after a million: a place still live (a waiter that old) is
        // never handed out twice.
        let mut index = self.places.partition_point(|&p| p < place);
        while self.places.get(index) == Some(&place) && place < u64::MAX {
            place += 1;
            index += 1;
        }
        self.places.insert(index, place);
        self.costs.insert(index, tokens);
        self.queued_tokens = self.queued_tokens.saturating_add(tokens);
        self.last_tag[lane.class % LANES] = tag;
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
        let tokens = self.costs.remove(index).unwrap_or(0);
        self.queued_tokens = self.queued_tokens.saturating_sub(tokens);
        // A crowd that went away gives its memory back.
        let (len, capacity) = (self.places.len(), self.places.capacity());
        if capacity > 64 && len < capacity / 4 {
            self.places.shrink_to(len * 2);
            self.costs.shrink_to(len * 2);
        }
        Some(index < len)
    }

    /// Releases `place` (or a newcomer without one) at `now`: the next release comes a
    /// spacing after this one's scheduled time if it came less than half a spacing late (a
    /// timer's lateness does not slow the pace down), else a spacing after `now`.
    pub(crate) fn release(&mut self, place: Option<u64>, now: Instant, spacing: Duration) {
        if let Some(place) = place {
            self.leave(place);
            self.virtual_time = self.virtual_time.max(place >> ARRIVAL_BITS);
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
        let places: Vec<u64> = (0..5).map(|_| q.join(Lane::FIFO, ms(20), 0)).collect();
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
        let a = q.join(Lane::FIFO, ms(20), 0);
        let b = q.join(Lane::FIFO, ms(20), 0);
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
        q.join(Lane::FIFO, ms(200), 0);
        assert!(!q.repace(ms(180)));
        assert!(q.repace(ms(100)));
        assert!(!q.repace(ms(100)), "already quoted");
    }

    fn lanes() -> (Lane, Lane) {
        let p = super::super::Priority::default();
        (
            p.lane(crate::Workload::Interactive),
            p.lane(crate::Workload::BatchSubmit),
        )
    }

    #[test]
    fn a_heavier_workload_goes_ahead_of_a_lighter_backlog_but_not_all_of_it() {
        let (interactive, batch) = lanes();
        let mut q = Queue::default();
        let t0 = Instant::now();
        let backlog: Vec<u64> = (0..100).map(|_| q.join(batch, ms(20), 0)).collect();
        assert_eq!(
            q.rank_of_newcomer(interactive),
            0,
            "ahead of the whole backlog"
        );
        let chat: Vec<u64> = (0..20).map(|_| q.join(interactive, ms(20), 0)).collect();
        // Sixteen interactive places per batch place: the 17th goes behind the first batch one.
        assert_eq!(q.rank(chat[0]), Some(0));
        assert_eq!(q.rank(chat[14]), Some(14));
        assert_eq!(q.rank(chat[15]), Some(16), "one batch request in between");
        assert_eq!(q.rank(backlog[0]), Some(15));
        // Releasing in order keeps each lane first come, first served.
        let mut order = Vec::new();
        while let Some(&front) = q.places.front() {
            order.push(front);
            q.release(Some(front), t0, ms(20));
        }
        let batch_order: Vec<u64> = order
            .iter()
            .copied()
            .filter(|p| backlog.contains(p))
            .collect();
        assert_eq!(batch_order, backlog);
    }

    #[test]
    fn a_newcomer_after_releases_starts_from_the_virtual_time() {
        let (interactive, batch) = lanes();
        let mut q = Queue::default();
        let t0 = Instant::now();
        let first: Vec<u64> = (0..3).map(|_| q.join(batch, ms(20), 0)).collect();
        q.release(Some(first[0]), t0, ms(20));
        q.release(Some(first[1]), t0, ms(20));
        // Interactive was idle: it does not get credit for the time it did not wait, but
        // it goes ahead of the remaining batch request.
        assert_eq!(q.rank_of_newcomer(interactive), 0);
        let late = q.join(batch, ms(20), 0);
        assert_eq!(q.rank(late), Some(1));
    }

    #[test]
    fn fifo_keeps_arrival_order_and_places_stay_distinct() {
        let mut q = Queue::default();
        let places: Vec<u64> = (0..1000).map(|_| q.join(Lane::FIFO, ms(1), 0)).collect();
        let mut sorted = places.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, places);
    }

    #[test]
    fn the_mean_cost_follows_the_live_places() {
        let mut q = Queue::default();
        assert_eq!(q.mean_tokens(), None);
        let small = q.join(Lane::FIFO, ms(1), 100);
        let large = q.join(Lane::FIFO, ms(1), 5000);
        assert_eq!(q.mean_tokens(), Some(2550));
        q.leave(large);
        assert_eq!(q.mean_tokens(), Some(100));
        q.release(Some(small), Instant::now(), ms(1));
        assert_eq!(q.mean_tokens(), None);
    }

    #[test]
    fn huge_spacings_and_ranks_saturate() {
        let q = Queue::default();
        let t0 = Instant::now();
        let at = q.slot(usize::MAX, t0, t0, Duration::MAX);
        assert!(at > t0);
    }
}
