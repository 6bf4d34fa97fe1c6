//! When to compute digits ahead of need, how many, and how urgently: pure
//! decisions from the pace at which this node's expansion grows and the
//! speed the engine showed. No clock: every input comes with its time.
//!
//! A ring at full speed on loopback adds about 200,000 characters a second,
//! and computing 10,000,000 digits takes seconds, so a doubling of the
//! cache must start early enough that it is done before the ring reaches
//! its end. Two rules decide:
//!
//! - **Urgent** when, at the measured pace, the ring reaches the end of the
//!   cache within [`URGENT_FACTOR`] times the time the next doubling is
//!   expected to take (plus [`URGENT_MARGIN`]): the doubling then runs at
//!   full priority, on two threads, since without it the ring would stop.
//! - **Early** once a quarter of the cache is used, while the pace is not
//!   known yet (a node that just took its first tokens): the doubling then
//!   runs at idle priority, on one thread, so that it takes only CPU nobody
//!   else wants. Once the pace is known, the first rule alone decides: a
//!   ring that moves gets its doublings in time, and no node computes
//!   digits that a doubling at full priority will bring anyway (on a busy
//!   machine, five nodes' idle doublings cost the ring a third of its
//!   pace).

use std::collections::VecDeque;
use std::time::Duration;

/// The pace is measured over the holdings of this long.
pub const PACE_WINDOW: Duration = Duration::from_secs(3);

/// A doubling is urgent when the ring would reach the end of the cache
/// within this many times its expected duration...
pub const URGENT_FACTOR: f64 = 4.0;

/// ... plus this margin (scheduling, a busy machine).
pub const URGENT_MARGIN: Duration = Duration::from_secs(1);

/// Samples kept for the pace: bounded whatever the pass rate.
const MAX_SAMPLES: usize = 256;

/// How fast this node's expansion grows: lengths seen at times.
#[derive(Debug, Default)]
pub struct Pace {
    samples: VecDeque<(Duration, usize)>,
}

impl Pace {
    /// The expansion had `len` characters at `now`.
    pub fn record(&mut self, now: Duration, len: usize) {
        if let Some(&(at, last)) = self.samples.back() {
            if now < at {
                return; // not on our clock
            }
            if len < last {
                // A shorter expansion: a new start (a restart, a wrong
                // suffix cut off). The old pace says nothing about it.
                self.samples.clear();
            }
        }
        while self.samples.front().is_some_and(|&(at, _)| now.saturating_sub(at) > PACE_WINDOW) {
            self.samples.pop_front();
        }
        if self.samples.len() == MAX_SAMPLES {
            // Keep the oldest (the window's span) and drop one in between.
            self.samples.remove(1);
        }
        self.samples.push_back((now, len));
    }

    /// Characters per second over the window ending at `now`; `None` until
    /// two samples at least 50 ms apart are in it.
    pub fn chars_per_sec(&self, now: Duration) -> Option<f64> {
        let &(first_at, first) = self.samples.iter().find(|&&(at, _)| now.saturating_sub(at) <= PACE_WINDOW)?;
        let &(last_at, last) = self.samples.back()?;
        let span = last_at.saturating_sub(first_at).as_secs_f64();
        (span >= 0.05).then(|| last.saturating_sub(first) as f64 / span)
    }
}

/// What the engine showed: how long a computation of so many digits took
/// on how many threads. The expected time of another size scales as
/// `n^1.15` (binary splitting with FFT multiplication; measured here from
/// 1M to 10M digits: x2.3 per doubling).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    digits: usize,
    secs: f64,
}

/// Seconds per digit at a million digits, before anything was measured
/// (one thread of a 2-core machine of 2026: 0.47 s).
const DEFAULT_SECS_PER_MILLION: f64 = 0.5;

impl Default for Cost {
    fn default() -> Self {
        Cost { digits: 1_000_000, secs: DEFAULT_SECS_PER_MILLION }
    }
}

impl Cost {
    /// A computation of `digits` took `took` (tiny ones say nothing: the
    /// fixed costs dominate them).
    pub fn measured(&mut self, digits: usize, took: Duration) {
        if digits >= 50_000 && !took.is_zero() {
            *self = Cost { digits, secs: took.as_secs_f64() };
        }
    }

    /// Expected time to compute `digits`.
    pub fn estimate(&self, digits: usize) -> Duration {
        let ratio = digits as f64 / self.digits as f64;
        Duration::from_secs_f64((self.secs * ratio.powf(1.15)).min(1e6))
    }
}

/// A growth to start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Fractional digits to compute.
    pub digits: usize,
    /// Full priority and two threads (else idle priority, one thread).
    pub urgent: bool,
}

/// The size after `cached_digits`: twice as many (at least `min`), at
/// most `max_digits`. Every node follows the same schedule, so nodes that
/// share a host's digits ask for the same sizes.
pub fn next_size(cached_digits: usize, min: usize, max_digits: usize) -> usize {
    cached_digits.saturating_mul(2).max(min).min(max_digits)
}

/// Whether to grow a cache of `cached_digits` now that the expansion has
/// `len_digits`, at `pace` (digits per second, if measured), the next
/// size costing `estimate`; `None` when no growth is needed yet (or the
/// cache is at `max_digits`).
pub fn plan(
    len_digits: usize,
    cached_digits: usize,
    next_digits: usize,
    pace: Option<f64>,
    estimate: Duration,
) -> Option<Plan> {
    if next_digits <= cached_digits {
        return None;
    }
    let left = cached_digits.saturating_sub(len_digits) as f64;
    let horizon = estimate.as_secs_f64() * URGENT_FACTOR + URGENT_MARGIN.as_secs_f64();
    let urgent = pace.is_some_and(|pace| pace > 0.0 && left / pace < horizon);
    if urgent {
        return Some(Plan { digits: next_digits, urgent: true });
    }
    let early = pace.is_none() && len_digits.saturating_mul(4) >= cached_digits;
    early.then_some(Plan { digits: next_digits, urgent: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_pace_is_the_growth_over_the_window() {
        let mut pace = Pace::default();
        assert_eq!(pace.chars_per_sec(Duration::ZERO), None);
        for i in 0..=10u32 {
            pace.record(i * 100 * MS, 1_000 + i as usize * 100);
        }
        assert_eq!(pace.chars_per_sec(S), Some(1_000.0));
        // Old samples leave the window: only the last 3 s count.
        pace.record(10 * S, 3_000);
        assert_eq!(pace.chars_per_sec(10 * S), None, "one sample in the window");
        pace.record(10 * S + 500 * MS, 4_000);
        assert_eq!(pace.chars_per_sec(10 * S + 500 * MS), Some(2_000.0));
        // A shorter expansion starts over.
        pace.record(11 * S, 10);
        assert_eq!(pace.chars_per_sec(11 * S), None);
    }

    #[test]
    fn samples_stay_bounded_whatever_the_pass_rate() {
        let mut pace = Pace::default();
        for i in 0..100_000u32 {
            pace.record(Duration::from_micros(i as u64 * 10), i as usize * 20);
        }
        assert!(pace.samples.len() <= MAX_SAMPLES);
        // 20 characters per 10 us.
        let v = pace.chars_per_sec(Duration::from_micros(999_990)).unwrap();
        assert!((v - 2_000_000.0).abs() < 1.0, "{v}");
    }

    #[test]
    fn the_cost_scales_from_what_was_measured() {
        let mut cost = Cost::default();
        cost.measured(1_000, Duration::from_millis(1)); // too small to tell
        assert_eq!(cost, Cost::default());
        cost.measured(1_000_000, 400 * MS);
        let ten = cost.estimate(10_000_000).as_secs_f64();
        assert!((5.0..6.0).contains(&ten), "{ten}");
    }

    #[test]
    fn a_fast_ring_grows_urgently_before_a_quarter_is_used() {
        // 200,000 digits a second, 5.12M cached, 1M used: the end is 20 s
        // away, the doubling takes 5.3 s: urgent.
        let plan = plan(1_000_000, 5_120_000, 10_000_000, Some(200_000.0), Duration::from_secs_f64(5.3));
        assert_eq!(plan, Some(Plan { digits: 10_000_000, urgent: true }));
    }

    #[test]
    fn a_ring_not_measured_yet_grows_at_idle_priority_once_a_quarter_is_used() {
        let est = Duration::from_secs(2);
        assert_eq!(plan(1_000_000, 5_120_000, 10_000_000, None, est), None);
        assert_eq!(plan(1_280_000, 5_120_000, 10_000_000, None, est), Some(Plan { digits: 10_000_000, urgent: false }));
    }

    #[test]
    fn a_slow_ring_grows_when_its_pace_says_so_and_not_before() {
        let est = Duration::from_secs(2);
        // 2,000 digits a second: the end is 1,900 s away.
        assert_eq!(plan(1_280_000, 5_120_000, 10_000_000, Some(2_000.0), est), None);
        // 8 s away, the doubling takes 2 s: within 4 x 2 + 1 = 9 s.
        assert_eq!(
            plan(5_104_000, 5_120_000, 10_000_000, Some(2_000.0), est),
            Some(Plan { digits: 10_000_000, urgent: true })
        );
        // A ring that stopped (its target, or a fault) grows nothing.
        assert_eq!(plan(5_119_000, 5_120_000, 10_000_000, Some(0.0), est), None);
    }

    #[test]
    fn nothing_grows_past_the_maximum() {
        assert_eq!(next_size(6_000_000, 10_000, 10_000_000), 10_000_000);
        assert_eq!(next_size(0, 10_000, 10_000_000), 10_000);
        assert_eq!(plan(9_999_000, 10_000_000, 10_000_000, Some(1e9), S), None);
    }
}
