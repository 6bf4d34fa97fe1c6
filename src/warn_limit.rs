//! Rate-limited warnings: a flood of bad input must not flood the log.
//!
//! The limiter itself takes the time as an argument ([`WarnLimiter::allow_at`]),
//! so the pure protocol node can use it with its own clock; the endpoints
//! use [`WarnLimiter::allow`], which reads tokio's clock.

use crate::protocol::Time;
use std::sync::OnceLock;
use std::time::Duration;

/// Allows at most `per_window` warnings per window of one second and counts
/// the ones it suppressed, so the next allowed warning can say how many.
#[derive(Debug)]
pub struct WarnLimiter {
    per_window: u32,
    window_start: Option<Time>,
    in_window: u32,
    suppressed: u64,
}

impl WarnLimiter {
    pub fn new(per_second: u32) -> Self {
        WarnLimiter { per_window: per_second, window_start: None, in_window: 0, suppressed: 0 }
    }

    /// `Some(n)` if a warning may be logged at `now`, `n` being how many
    /// were suppressed since the last one; `None` to stay quiet.
    pub fn allow_at(&mut self, now: Time) -> Option<u64> {
        match self.window_start {
            Some(start) if now.saturating_sub(start) < Duration::from_secs(1) => {}
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window < self.per_window {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// [`allow_at`](Self::allow_at) on tokio's clock (for the endpoints).
    pub fn allow(&mut self) -> Option<u64> {
        static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
        self.allow_at(tokio::time::Instant::now().saturating_duration_since(origin))
    }
}

/// Log a warning through a [`WarnLimiter`], mentioning suppressed ones:
/// `warn_limited!(limiter, "...")` on tokio's clock, or
/// `warn_limited!(at now, limiter, "...")` with a given time.
#[macro_export]
macro_rules! warn_limited {
    (at $now:expr, $limiter:expr, $($arg:tt)+) => {
        $crate::warn_limited!(@log $limiter.allow_at($now), $($arg)+)
    };
    (@log $allowed:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $allowed {
            if suppressed > 0 {
                log::warn!("{} ({} similar warnings suppressed)", format_args!($($arg)+), suppressed);
            } else {
                log::warn!($($arg)+);
            }
        }
    };
    ($limiter:expr, $($arg:tt)+) => {
        $crate::warn_limited!(@log $limiter.allow(), $($arg)+)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_second_and_counts_suppressed() {
        let mut l = WarnLimiter::new(2);
        let t0 = Time::from_secs(7);
        assert_eq!(l.allow_at(t0), Some(0));
        assert_eq!(l.allow_at(t0), Some(0));
        assert_eq!(l.allow_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(l.allow_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(l.allow_at(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(l.allow_at(t0 + Duration::from_secs(1)), Some(0));
    }
}
