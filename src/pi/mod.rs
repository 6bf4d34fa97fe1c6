//! Digits of pi for the ring: a shared, growing cache of the expansion and
//! the [`Expansion`] values that point into it (PROTOCOL section 4).
//!
//! Every expansion a node keeps is correct pi by construction: it is a
//! prefix of the cache, and data received from peers is turned into an
//! `Expansion` only through [`PiDigits::verify`], which keeps the longest
//! correct prefix. Cloning an expansion is cheap (an `Arc` and a length), so
//! the whole expansion can travel with every pass without copies.

mod chudnovsky;

pub use chudnovsky::fraction_digits;

use std::sync::{Arc, Mutex, RwLock};

/// Fractional digits appended by one holding of the token.
pub const DIGITS_PER_HOLDING: usize = 20;

/// The wire form's prefix before the fractional digits.
const HEAD: &str = "3,";

/// The smallest cache computed at once (a few milliseconds of work).
const MIN_CACHE_DIGITS: usize = 10_000;

/// A correct prefix of the expansion `3,14159...` (possibly empty).
#[derive(Clone)]
pub struct Expansion {
    text: Arc<str>,
    len: usize,
}

impl Expansion {
    /// The empty expansion `""` of a ring that has not computed anything.
    pub fn empty() -> Self {
        Expansion { text: Arc::from(""), len: 0 }
    }

    /// Length in characters, which is the token's `progress`.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wire text, e.g. `3,14159265358979323846`.
    pub fn as_str(&self) -> &str {
        &self.text[..self.len]
    }

    /// Number of fractional digits (after `3,`).
    pub fn fraction_digits(&self) -> usize {
        self.len.saturating_sub(HEAD.len())
    }

    /// The last `n` characters, for logs and the monitor.
    pub fn tail(&self, n: usize) -> &str {
        let s = self.as_str();
        &s[s.len().saturating_sub(n)..]
    }

    /// The longer of two expansions (both are correct pi, so the longer one
    /// contains the shorter).
    pub fn longer(self, other: Expansion) -> Expansion {
        if other.len > self.len {
            other
        } else {
            self
        }
    }
}

/// Length of the expansion after one more holding: `3,` and 20 more digits.
pub fn extended_len(len: usize) -> usize {
    len.max(HEAD.len()) + DIGITS_PER_HOLDING
}

impl std::fmt::Debug for Expansion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expansion(len {}, ..{:?})", self.len, self.tail(10))
    }
}

impl PartialEq for Expansion {
    fn eq(&self, other: &Self) -> bool {
        // Both are prefixes of pi: equal length means equal text.
        self.len == other.len
    }
}

impl Eq for Expansion {}

/// What verification of received data found.
#[derive(Debug)]
pub struct Verified {
    /// The longest correct prefix of the data.
    pub expansion: Expansion,
    /// Length of the received data; larger than `expansion.len()` when a
    /// suffix was wrong.
    pub received_len: usize,
}

impl Verified {
    pub fn is_intact(&self) -> bool {
        self.expansion.len() == self.received_len
    }
}

/// A process-wide cache of pi's expansion, grown on demand.
///
/// Reads take a snapshot (`Arc<str>`); growth computes a longer expansion
/// (about twice what is needed, so that growing in 20-digit steps computes
/// only a logarithmic number of times) and publishes it. Growing is
/// blocking: call it from a blocking thread, never from an actor.
pub struct PiDigits {
    snapshot: RwLock<Arc<str>>,
    grow_lock: Mutex<()>,
    max_len: usize,
}

impl PiDigits {
    /// A cache that will compute at most `max_fraction_digits` digits.
    pub fn new(max_fraction_digits: usize) -> Self {
        PiDigits {
            snapshot: RwLock::new(Arc::from(HEAD)),
            grow_lock: Mutex::new(()),
            max_len: HEAD.len() + max_fraction_digits,
        }
    }

    /// The current cache text (`3,` and the digits computed so far).
    pub fn snapshot(&self) -> Arc<str> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Fractional digits already computed.
    pub fn cached_digits(&self) -> usize {
        self.snapshot().len() - HEAD.len()
    }

    /// Longest expansion this cache may ever hold, in characters.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The expansion of length `len`, if the cache already holds it.
    pub fn cached_expansion(&self, len: usize) -> Option<Expansion> {
        let text = self.snapshot();
        (len <= text.len()).then_some(Expansion { text, len })
    }

    /// The expansion of length `len` (clamped to the maximum), computing if
    /// needed. Blocking.
    pub fn expansion(&self, len: usize) -> Expansion {
        let len = len.min(self.max_len);
        if let Some(e) = self.cached_expansion(len) {
            return e;
        }
        self.grow_to(len);
        self.cached_expansion(len).expect("cache grown to the requested length")
    }

    /// The expansion after one more holding. Blocking if not cached.
    pub fn extend(&self, current: &Expansion) -> Expansion {
        self.expansion(extended_len(current.len()))
    }

    /// The longest correct prefix of `data` (PROTOCOL section 4). Blocking:
    /// data longer than the cache makes it compute.
    pub fn verify(&self, data: &str) -> Verified {
        let received_len = data.len();
        let mut text = self.snapshot();
        if data.len() > text.len() && text.len() < self.max_len {
            // Only grow if what we have is all correct; otherwise the
            // mismatch is already inside the cache.
            if common_prefix_len(data.as_bytes(), text.as_bytes()) == text.len() {
                self.grow_to(data.len().min(self.max_len));
                text = self.snapshot();
            }
        }
        let len = common_prefix_len(data.as_bytes(), text.as_bytes());
        Verified { expansion: Expansion { text, len }, received_len }
    }

    fn grow_to(&self, len: usize) {
        let _guard = self.grow_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        if current.len() >= len {
            return; // another thread grew it meanwhile
        }
        let wanted_digits = (len - HEAD.len()).saturating_mul(2).max(MIN_CACHE_DIGITS);
        let digits = wanted_digits.min(self.max_len - HEAD.len());
        let started = std::time::Instant::now();
        let mut text = String::with_capacity(HEAD.len() + digits);
        text.push_str(HEAD);
        text.push_str(&fraction_digits(digits));
        log::debug!("pi: computed {digits} digits in {:.3} s", started.elapsed().as_secs_f64());
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(text);
    }
}

/// Length of the common prefix of two byte strings.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    if a[..n] == b[..n] {
        return n;
    }
    // Find the mismatch in chunks first (fast), then byte by byte.
    const CHUNK: usize = 4096;
    let mut start = 0;
    while start + CHUNK <= n && a[start..start + CHUNK] == b[start..start + CHUNK] {
        start += CHUNK;
    }
    start + a[start..n].iter().zip(&b[start..n]).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix() {
        assert_eq!(common_prefix_len(b"", b"abc"), 0);
        assert_eq!(common_prefix_len(b"abc", b"abc"), 3);
        assert_eq!(common_prefix_len(b"abd", b"abc"), 2);
        let a = vec![b'1'; 10_000];
        let mut b = a.clone();
        b[9_000] = b'2';
        assert_eq!(common_prefix_len(&a, &b), 9_000);
    }

    #[test]
    fn extended_len_starts_with_head() {
        assert_eq!(extended_len(0), 22);
        assert_eq!(extended_len(1), 22);
        assert_eq!(extended_len(22), 42);
        assert_eq!(extended_len(25), 45);
    }
}
