//! Rate-limited warnings: a flood of bad input must not flood the log.

use tokio::time::{Duration, Instant};

/// Allows at most `per_window` warnings per window of one second and counts
/// the ones it suppressed, so the next allowed warning can say how many.
#[derive(Debug)]
pub struct WarnLimiter {
    per_window: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl WarnLimiter {
    pub fn new(per_second: u32) -> Self {
        WarnLimiter { per_window: per_second, window_start: None, in_window: 0, suppressed: 0 }
    }

    /// `Some(n)` if a warning may be logged now, `n` being how many were
    /// suppressed since the last one; `None` to stay quiet.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
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
}

/// Log a warning through a [`WarnLimiter`], mentioning suppressed ones.
#[macro_export]
macro_rules! warn_limited {
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.allow() {
            if suppressed > 0 {
                log::warn!("{} ({} similar warnings suppressed)", format_args!($($arg)+), suppressed);
            } else {
                log::warn!($($arg)+);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_per_second_and_counts_suppressed() {
        let mut l = WarnLimiter::new(2);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.allow(), Some(2));
        assert_eq!(l.allow(), Some(0));
    }
}
