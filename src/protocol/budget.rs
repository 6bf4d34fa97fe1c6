//! Budgets for the work a node does because something arrived (PROTOCOL
//! section 10, "Budgets"): TCP answers and PINGs cost a connection each, so
//! a flood of valid datagrams must not turn into a flood of connections.
//!
//! A [`Budget`] is a token bucket per source address plus one for all
//! sources together, on the node's own clock (pure: the time is passed in).
//! The per-source map is bounded: when it is full, sources whose bucket has
//! refilled are dropped, and while it stays full a new source is refused.

use super::Time;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The most source addresses a budget remembers at once.
const MAX_SOURCES: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Time,
}

impl Bucket {
    fn full(capacity: f64, now: Time) -> Self {
        Bucket { tokens: capacity, at: now }
    }

    fn refill(&mut self, capacity: f64, per_second: f64, now: Time) {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
    }
}

/// How much work a budget allows: a burst of `burst`, then `per_second`,
/// for each source and for all together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub burst: f64,
    pub per_second: f64,
    pub total_burst: f64,
    pub total_per_second: f64,
}

impl Rates {
    /// `per_period` per source and `total_per_period` in all, every
    /// `period`, with bursts of four periods.
    pub fn per_period(per_period: f64, total_per_period: f64, period: Duration) -> Self {
        let periods_per_second = 1.0 / period.as_secs_f64().max(1e-3);
        Rates {
            burst: 4.0 * per_period,
            per_second: per_period * periods_per_second,
            total_burst: 4.0 * total_per_period,
            total_per_second: total_per_period * periods_per_second,
        }
    }
}

/// Token buckets per source address and in total.
#[derive(Clone, Debug)]
pub struct Budget {
    rates: Rates,
    /// When the full map of sources was last swept (at most once a second).
    swept: Option<Time>,
    total: Option<Bucket>,
    sources: HashMap<Ipv4Addr, Bucket>,
    /// Work refused since the last [`take_refused`](Self::take_refused).
    refused: u64,
}

impl Budget {
    pub fn new(rates: Rates) -> Self {
        Budget { rates, swept: None, total: None, sources: HashMap::new(), refused: 0 }
    }

    /// Whether one more piece of work for `source` fits at `now`; it is
    /// counted if it does.
    pub fn allow(&mut self, source: Ipv4Addr, now: Time) -> bool {
        let r = self.rates;
        let total = self.total.get_or_insert(Bucket::full(r.total_burst, now));
        total.refill(r.total_burst, r.total_per_second, now);
        let sweep_due = self.swept.is_none_or(|at| now.saturating_sub(at) >= Duration::from_secs(1));
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) && sweep_due {
            self.swept = Some(now);
            self.sources.retain(|_, b| {
                b.refill(r.burst, r.per_second, now);
                b.tokens < r.burst
            });
        }
        let room = self.sources.len() < MAX_SOURCES || self.sources.contains_key(&source);
        let bucket = self.sources.entry(source).or_insert(Bucket::full(r.burst, now));
        bucket.refill(r.burst, r.per_second, now);
        if room && bucket.tokens >= 1.0 && total.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            total.tokens -= 1.0;
            true
        } else {
            if !room {
                self.sources.remove(&source);
            }
            self.refused += 1;
            false
        }
    }

    /// How many were refused since the last call.
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }

    /// Sources remembered now (bounded by 4,096).
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + n)
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let rates = Rates { burst: 3.0, per_second: 2.0, total_burst: 100.0, total_per_second: 100.0 };
        let mut b = Budget::new(rates);
        let t0 = Time::from_secs(10);
        assert!((0..3).all(|_| b.allow(ip(1), t0)));
        assert!(!b.allow(ip(1), t0));
        assert!(b.allow(ip(2), t0), "another source has its own bucket");
        assert!(!b.allow(ip(1), t0 + Duration::from_millis(400)));
        assert!(b.allow(ip(1), t0 + Duration::from_millis(500)));
        assert_eq!(b.take_refused(), 2);
    }

    #[test]
    fn all_sources_together_share_the_total() {
        let rates = Rates { burst: 5.0, per_second: 5.0, total_burst: 10.0, total_per_second: 10.0 };
        let mut b = Budget::new(rates);
        let t0 = Time::from_secs(10);
        let allowed = (0..100).filter(|i| b.allow(ip(*i), t0)).count();
        assert_eq!(allowed, 10);
        let second = t0 + Duration::from_secs(1);
        assert_eq!((100..200).filter(|i| b.allow(ip(*i), second)).count(), 10);
    }

    #[test]
    fn the_sources_remembered_are_bounded() {
        let rates = Rates { burst: 1.0, per_second: 0.001, total_burst: 1e9, total_per_second: 1e9 };
        let mut b = Budget::new(rates);
        let t0 = Time::from_secs(10);
        for i in 0..10_000 {
            b.allow(ip(i), t0);
        }
        assert!(b.sources() <= MAX_SOURCES);
        // Once their buckets refill, old sources make room for new ones.
        let later = t0 + Duration::from_secs(2_000);
        assert!(b.allow(ip(20_000), later));
    }
}
