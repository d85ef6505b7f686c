//! A retry budget shared by every clone: retries spend tokens, successes earn them back.
//!
//! Without a budget, every request that fails during an outage is retried up to the attempt
//! cap, so the outage multiplies load by that cap exactly when the server can least take it.
//! This is the AWS SDKs' standard retry quota (botocore's `RetryQuotaChecker`, smithy-rs's
//! retry permits), with its arithmetic:
//!
//! | event | tokens |
//! |---|---:|
//! | a retry | −5 (−10 after a timeout); no retry if the bucket has fewer |
//! | a 2xx after retries | +the cost of the *last* retry only |
//! | a 2xx on the first attempt | +1 |
//! | any other final answer (400, 404, 501, a retryable status retrying gave up on) | 0 |
//!
//! So a server that needs four tries per success drains 10 tokens per request, and a flaky
//! server cannot keep the bucket full by succeeding eventually. After about 100 back-to-back
//! retries with no success the bucket is empty: requests get one attempt each until successes
//! refill it, so attempts per request fall toward 1.
//!
//! ```
//! use tower_reliability::retry::RetryBudget;
//!
//! let budget = RetryBudget::new(10, 5, 10);
//! assert!(budget.try_withdraw(5));
//! assert!(budget.try_withdraw(5));
//! assert!(!budget.try_withdraw(5), "empty: no more retries");
//! budget.deposit(5);
//! assert_eq!(budget.available(), 5);
//! ```

use crate::sync::{Arc, AtomicU32, Ordering};

/// A token-bucket retry budget; clones share the same bucket.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: AtomicU32,
    max: u32,
    retry_cost: u32,
    timeout_retry_cost: u32,
}

impl Default for RetryBudget {
    /// The AWS standard quota: 500 tokens, retry 5, retry after a timeout 10.
    fn default() -> Self {
        RetryBudget::new(500, 5, 10)
    }
}

impl RetryBudget {
    /// A full bucket of `max` tokens with the given costs.
    pub fn new(max: u32, retry_cost: u32, timeout_retry_cost: u32) -> Self {
        RetryBudget {
            inner: Arc::new(Bucket {
                tokens: AtomicU32::new(max),
                max,
                retry_cost,
                timeout_retry_cost,
            }),
        }
    }

    /// A budget that never runs out.
    pub fn unlimited() -> Self {
        RetryBudget::new(u32::MAX, 0, 0)
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        self.inner.tokens.load(Ordering::Relaxed)
    }

    /// The bucket's size.
    pub fn max(&self) -> u32 {
        self.inner.max
    }

    /// The cost of a retry (`after_timeout`: a retry caused by a timeout).
    pub fn cost(&self, after_timeout: bool) -> u32 {
        if after_timeout {
            self.inner.timeout_retry_cost
        } else {
            self.inner.retry_cost
        }
    }

    /// Takes `cost` tokens if there are that many; `false` (and nothing taken) otherwise.
    pub fn try_withdraw(&self, cost: u32) -> bool {
        self.inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
            .is_ok()
    }

    /// Returns `amount` tokens, never above the maximum.
    pub fn deposit(&self, amount: u32) {
        // The common case on the success path: the bucket is full. A load, no write.
        if amount == 0 || self.inner.tokens.load(Ordering::Relaxed) >= self.inner.max {
            return;
        }
        let max = self.inner.max;
        let _ = self
            .inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < max).then(|| t.saturating_add(amount).min(max))
            });
    }

    /// Records a success (a 2xx): gives back the cost of the request's last retry, or 1 token
    /// if it needed none (`None`), as the AWS standard does. Other final answers give nothing
    /// back: do not call this for them.
    ///
    /// ```
    /// use tower_reliability::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::new(100, 5, 10);
    /// // Three retries, then a success: 15 taken, the last retry's 5 given back.
    /// for _ in 0..3 {
    ///     assert!(budget.try_withdraw(5));
    /// }
    /// budget.on_success(Some(5));
    /// assert_eq!(budget.available(), 90);
    /// budget.on_success(None);
    /// assert_eq!(budget.available(), 91);
    /// ```
    pub fn on_success(&self, last_retry_cost: Option<u32>) {
        self.deposit(last_retry_cost.unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_drains_then_successes_refill() {
        let budget = RetryBudget::default();
        let mut retries = 0;
        while budget.try_withdraw(budget.cost(false)) {
            retries += 1;
        }
        assert_eq!(retries, 100);
        assert_eq!(budget.available(), 0);
        for _ in 0..5 {
            budget.on_success(None);
        }
        assert!(budget.try_withdraw(5));
        assert!(!budget.try_withdraw(10));
        budget.on_success(Some(10_000));
        assert_eq!(budget.available(), 500, "never above the max");
    }

    #[test]
    fn clones_share_one_bucket_across_threads() {
        let budget = RetryBudget::new(1000, 1, 1);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = budget.clone();
                std::thread::spawn(move || (0..400).filter(|_| b.try_withdraw(1)).count())
            })
            .collect();
        let taken: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(taken, 1000);
        assert_eq!(budget.available(), 0);
    }
}
