//! When the run's AWS calls last succeeded. A call that stays throttled while other calls of
//! the same run succeed is AWS pacing the run (a rate limit shared by many teams), not a
//! fault: the executor lets it wait its turn. A call throttled while nothing succeeds is a
//! fault, and fails within the retry budget like any other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The time of the last successful AWS answer, shared by every client of a run.
#[derive(Debug, Clone)]
pub struct Progress {
    base: Instant,
    /// Milliseconds after `base`, plus one; 0 until the first success.
    last_ok: Arc<AtomicU64>,
    /// Every attempt answered (any status): the controller's `aws_calls_total`.
    calls: Arc<AtomicU64>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            last_ok: Arc::new(AtomicU64::new(0)),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Progress {
    /// Records a successful answer now.
    pub fn mark(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.last_ok.fetch_max(ms, Ordering::Relaxed);
    }

    /// Whether an answer succeeded at or after `t` (to the millisecond).
    pub fn since(&self, t: Instant) -> bool {
        match self.last_ok.load(Ordering::Relaxed) {
            0 => false,
            ms => self.base + Duration::from_millis(ms) > t,
        }
    }

    /// The attempts answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The SDK interceptor that marks every 2xx answer of the clients it is given to.
    pub fn interceptor(&self) -> MarkSuccess {
        MarkSuccess(self.clone())
    }
}

/// Marks [`Progress`] on every successful HTTP answer.
#[derive(Debug)]
pub struct MarkSuccess(Progress);

impl Intercept for MarkSuccess {
    fn name(&self) -> &'static str {
        "bootstrap-progress"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(r) = context.response() {
            self.0.calls.fetch_add(1, Ordering::Relaxed);
            if r.status().is_success() {
                self.0.mark();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_succeeded_until_marked_then_only_since_earlier_times() {
        let p = Progress::default();
        let before = Instant::now();
        assert!(!p.since(before), "no success yet");
        std::thread::sleep(Duration::from_millis(5));
        p.clone().mark();
        assert!(p.since(before), "a clone marks the same progress");
        std::thread::sleep(Duration::from_millis(5));
        assert!(!p.since(Instant::now()), "not since a later time");
    }
}
