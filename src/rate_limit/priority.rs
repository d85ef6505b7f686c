//! Who goes first when the limit binds: priority by workload.

use crate::Workload;

/// The virtual time one request of weight 1 takes; a weight's step is this over the weight.
const SCALE: u64 = 256;

/// Who goes first when the limit binds: priority by workload.
///
/// One account often carries a chat front end and batch or agent work at once. When the server's
/// limit binds, requests wait in their scope's queue; first come, first served would put a
/// person typing behind a thousand batch submissions. So the queue serves workloads by
/// *weighted fair queueing*: each waiting request gets a virtual finish tag, its workload's
/// last tag (or the queue's virtual time, if later) plus `1 / weight`, and the queue releases
/// in tag order. With the default weights (interactive 16, agentic and long-context 4, batch
/// submission 1) an interactive request joining a queue of batch requests goes after at most
/// one of them, while batch still gets a sixteenth of the releases whenever both wait: weighted,
/// not strict, so no workload starves. Within one workload the order is first come, first
/// served, and a request larger than a whole token bucket still goes, alone, in its turn.
///
/// The workload is the request's [`Workload`] extension, else the one an enclosing
/// [`TimeoutByWorkload`](crate::TimeoutByWorkload) resolved (the preset's default), else
/// [`Workload::Interactive`].
///
/// ```
/// use tower_reliability::rate_limit::{GateConfig, Priority};
///
/// // Interactive four times batch's share, the others in between; or first come, first served.
/// let weighted = GateConfig::default().with_priority(Priority::weighted(4, 2, 2, 1));
/// let fifo = GateConfig::default().with_priority(Priority::Fifo);
/// # let _ = (weighted, fifo);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// First come, first served, whatever the workload.
    Fifo,
    /// Weighted fair queueing: each workload's share of the releases while several wait is
    /// its weight over the waiting workloads' total. Weights are clamped to 1..=256.
    Weighted {
        /// [`Workload::Interactive`]'s weight.
        interactive: u16,
        /// [`Workload::Agentic`]'s weight.
        agentic: u16,
        /// [`Workload::LongContext`]'s weight.
        long_context: u16,
        /// [`Workload::BatchSubmit`]'s weight.
        batch_submit: u16,
    },
}

impl Default for Priority {
    /// Interactive 16, agentic and long-context 4, batch submission 1.
    fn default() -> Self {
        Priority::weighted(16, 4, 4, 1)
    }
}

impl Priority {
    /// Weighted fair queueing with these weights (clamped to 1..=256).
    pub const fn weighted(
        interactive: u16,
        agentic: u16,
        long_context: u16,
        batch_submit: u16,
    ) -> Self {
        Priority::Weighted {
            interactive,
            agentic,
            long_context,
            batch_submit,
        }
    }

    /// The weight of `workload` (1..=256); under [`Fifo`](Self::Fifo), 256 for every one. A
    /// workload without a field of its own takes `batch_submit`'s.
    pub fn weight(&self, workload: Workload) -> u16 {
        let weight = match *self {
            Priority::Fifo => SCALE as u16,
            Priority::Weighted {
                interactive,
                agentic,
                long_context,
                batch_submit,
            } => match workload {
                Workload::Interactive => interactive,
                Workload::Agentic => agentic,
                Workload::LongContext => long_context,
                // Batch submission, and any workload added later: the lowest class.
                _ => batch_submit,
            },
        };
        weight.clamp(1, SCALE as u16)
    }

    /// The queue lane of `workload`: every workload shares one lane under `Fifo`.
    pub(crate) fn lane(&self, workload: Workload) -> Lane {
        let class = match self {
            Priority::Fifo => 0,
            Priority::Weighted { .. } => workload.index(),
        };
        Lane {
            class,
            step: SCALE / u64::from(self.weight(workload)),
        }
    }
}

/// A workload's lane in the queue: its class (whose last tag it follows) and its tag step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lane {
    pub(crate) class: usize,
    pub(crate) step: u64,
}

impl Lane {
    /// The one lane of first come, first served.
    #[cfg(test)]
    pub(crate) const FIFO: Lane = Lane { class: 0, step: 1 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_clamped_and_fifo_is_one_lane() {
        let p = Priority::weighted(0, 4, 1000, 1);
        assert_eq!(p.weight(Workload::Interactive), 1);
        assert_eq!(p.weight(Workload::LongContext), 256);
        assert_eq!(p.lane(Workload::Agentic), Lane { class: 1, step: 64 });
        for &w in Workload::ALL {
            assert_eq!(Priority::Fifo.lane(w), Lane { class: 0, step: 1 });
        }
        assert_eq!(Priority::default().lane(Workload::Interactive).step, 16);
    }
}
