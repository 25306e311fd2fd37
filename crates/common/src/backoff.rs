//! The one retry schedule of bootstrap: exponential back-off with jitter inside a time budget,
//! used by every layer that tries again (AWS SDK calls, Kubernetes requests, IAM's eventual
//! consistency in the executor), so a blip of 10 seconds is ridden out and a persistent fault
//! fails within 20.

use std::time::Duration;

/// A back-off schedule bounded by the total time it may sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The step before the second attempt; each later step doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// The most the steps may add up to: past it, no further attempt.
    pub budget: Duration,
}

impl Default for Backoff {
    /// 0.25 s doubling to 4 s within 20 s: nine attempts, sleeping 14.8–19.75 s in all when
    /// every one fails, so a fault that lasts 10 s is outlived and a persistent one is not
    /// waited on for more than 20 s.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            budget: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The un-jittered step after `attempt` (1-based) failed.
    pub fn step(&self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay)
    }

    /// How many attempts the budget allows, the first included: as many as the un-jittered
    /// steps between them fit in the budget (at least one).
    pub fn attempts(&self) -> u32 {
        let mut slept = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let next = slept + self.step(attempt);
            if next > self.budget || attempt >= 64 {
                return attempt;
            }
            slept = next;
            attempt += 1;
        }
    }

    /// The delay after `attempt` failed, or `None` when the budget allows no more attempts.
    /// The step is jittered between three quarters and all of it (`jitter` in 0..=1000, per
    /// mille), so callers that failed together do not come back together.
    pub fn delay(&self, attempt: u32, jitter: u32) -> Option<Duration> {
        if attempt >= self.attempts() {
            return None;
        }
        let step = self.step(attempt);
        Some(step * 3 / 4 + step / 4 * jitter.min(1000) / 1000)
    }

    /// [`Backoff::delay`] with jitter from the clock's nanoseconds (no RNG needed).
    pub fn next_delay(&self, attempt: u32) -> Option<Duration> {
        self.delay(attempt, clock_jitter())
    }

    /// The wait before trying a call again that the service is pacing (throttled while other
    /// calls of the run succeed): the capped step, jittered, outside the budget (the caller's
    /// deadline bounds how long it goes on).
    pub fn paced_delay(&self) -> Duration {
        let step = self.max_delay;
        step * 3 / 4 + step / 4 * clock_jitter() / 1000
    }

    /// The longest the schedule sleeps when every attempt fails (all jitter at its maximum).
    pub fn worst_case(&self) -> Duration {
        (1..self.attempts()).map(|a| self.step(a)).sum()
    }

    /// The shortest it sleeps when every attempt fails (all jitter at its minimum).
    pub fn best_case(&self) -> Duration {
        (1..self.attempts()).filter_map(|a| self.delay(a, 0)).sum()
    }
}

/// Per mille, from the clock's nanoseconds.
fn clock_jitter() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 1001)
        .unwrap_or(500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rides_out_ten_seconds_and_gives_up_within_twenty() {
        let b = Backoff::default();
        assert_eq!(b.attempts(), 9);
        assert!(
            b.best_case() > Duration::from_secs(10),
            "{:?}",
            b.best_case()
        );
        assert!(
            b.worst_case() <= Duration::from_secs(20),
            "{:?}",
            b.worst_case()
        );
        assert_eq!(b.delay(9, 500), None, "no tenth attempt");
        let paced = b.paced_delay();
        assert!(
            (Duration::from_secs(3)..=Duration::from_secs(4)).contains(&paced),
            "{paced:?}"
        );
    }

    #[test]
    fn steps_double_up_to_the_cap_and_jitter_stays_within_a_quarter() {
        let b = Backoff::default();
        let steps: Vec<_> = (1..=7).map(|a| b.step(a).as_millis()).collect();
        assert_eq!(steps, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        for attempt in 1..b.attempts() {
            let step = b.step(attempt);
            for jitter in [0, 1, 500, 999, 1000, 5000] {
                let d = b.delay(attempt, jitter).expect("within budget");
                assert!(d >= step * 3 / 4 && d <= step, "{attempt} {jitter}: {d:?}");
            }
        }
    }

    #[test]
    fn a_budget_smaller_than_the_first_step_allows_one_attempt() {
        let b = Backoff {
            budget: Duration::from_millis(100),
            ..Backoff::default()
        };
        assert_eq!(b.attempts(), 1);
        assert_eq!(b.delay(1, 0), None);
        assert_eq!(b.worst_case(), Duration::ZERO);
    }
}
