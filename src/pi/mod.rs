//! Digits of pi for the ring: a shared, growing cache of the expansion and
//! the [`Expansion`] values that point into it (PROTOCOL section 4).
//!
//! - `chudnovsky`: the engine (GMP, one or two threads);
//! - `cache`: [`PiDigits`], the cache, grown ahead of need;
//! - [`ahead`]: when a growth starts and how urgently (pure);
//! - [`store`]: digits shared by the nodes of one user on one host.
//!
//! Every expansion a node keeps is correct pi by construction: it is a
//! prefix of the cache, and data received from peers is turned into an
//! `Expansion` only through [`PiDigits::verify`], which keeps the longest
//! correct prefix. Cloning an expansion is cheap (an `Arc` and a length), so
//! the whole expansion can travel with every pass without copies.

pub mod ahead;
mod cache;
mod chudnovsky;
pub mod store;

pub use cache::{Computing, PiDigits};
pub use chudnovsky::{fraction_digits, fraction_digits_on};

use std::sync::Arc;

/// Fractional digits appended by one holding of the token.
pub const DIGITS_PER_HOLDING: usize = 20;

/// The wire form's prefix before the fractional digits.
const HEAD: &str = "3,";

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

    /// The first `len` characters (all of it when shorter): a prefix of pi
    /// is pi.
    pub fn prefix(&self, len: usize) -> Expansion {
        Expansion { text: Arc::clone(&self.text), len: len.min(self.len) }
    }

    /// Every correct character this expansion's text holds: the cache
    /// snapshot it was cut from, which often goes beyond `len` (digits
    /// computed ahead). What a node knows of pi without computing.
    pub fn known(&self) -> Expansion {
        Expansion { text: Arc::clone(&self.text), len: self.text.len() }
    }

    /// This expansion alone, without the digits beyond it that its text
    /// holds: as a node that computed exactly this far has it (a copy).
    pub fn alone(&self) -> Expansion {
        Expansion { text: Arc::from(self.as_str()), len: self.len }
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

/// Received digits that go beyond what this node has computed: correct pi
/// as far as the cache reached when they arrived, the rest still to check.
///
/// Checking them means computing that far, which can take seconds; a node
/// handed the token takes it first and checks while it holds it
/// ([`PiDigits::verify`] on a blocking thread), so the ring's heartbeats
/// never wait for a computation (PROTOCOL section 4).
#[derive(Clone)]
pub struct Unchecked {
    /// The received characters, which start at character `offset` of the
    /// expansion (a delta hand-off sends only what the receiver lacks).
    text: Arc<str>,
    offset: usize,
    /// The length the sender claims: at most the cache's maximum.
    len: usize,
}

impl Unchecked {
    /// The length the sender claims, in characters (at most the maximum
    /// this node computes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The received text, to verify: characters `offset()..` of the
    /// expansion.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the received text starts in the expansion.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl std::fmt::Debug for Unchecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unchecked(len {} from {})", self.len, self.offset)
    }
}

impl PartialEq for Unchecked {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset && self.text == other.text
    }
}

/// What a node makes of the characters handed with the token (PROTOCOL
/// section 4), compared with the expansion it already has: see
/// [`check_handed`].
#[derive(Debug)]
pub struct Handed {
    /// The correct expansion the hand-off shows: what of it matches ours,
    /// as far as ours goes.
    pub expansion: Expansion,
    /// The characters beyond ours, to check while holding the token.
    pub unchecked: Option<Unchecked>,
    /// A character that is not pi's: the claimed length, and where the
    /// received text stopped being pi.
    pub wrong: Option<(usize, usize)>,
    /// The text starts further than ours goes by more than the gap a node
    /// fills itself: the characters in between that this node lacks.
    pub gap_refused: Option<usize>,
}

/// Section 4 for `data`, the characters of a hand-off from character
/// `from` on (`from` is 0 for a whole expansion), against `own`, a correct
/// expansion: the received text is compared with what `own` knows
/// ([`Expansion::known`]: its digits and those computed beyond them), and
/// what goes beyond that is left to check while holding the token
/// ([`PiDigits::verify_unchecked`]). When `data` starts past what is
/// known, this node computes the missing characters itself if they are at
/// most `max_gap`; otherwise the hand-off counts as carrying nothing beyond
/// `own`. So a lying hand-off ("a million digits from here on", and none
/// sent) costs at most `max_gap` characters of computation, and what it
/// sends costs checking what it sent. Pure: a comparison.
pub fn check_handed(own: &Expansion, from: usize, data: &str, max_len: usize, max_gap: usize) -> Handed {
    let known = own.known();
    let claimed = from.saturating_add(data.len());
    let mut handed = Handed { expansion: own.clone(), unchecked: None, wrong: None, gap_refused: None };
    let known_len = known.len();
    let beyond = |handed: &mut Handed| {
        if known_len < max_len {
            handed.unchecked = Some(Unchecked { text: Arc::from(data), offset: from, len: claimed.min(max_len) });
        }
    };
    if from > known.len() {
        let gap = from - known.len();
        if gap > max_gap {
            handed.gap_refused = Some(gap);
        } else if !data.is_empty() {
            beyond(&mut handed);
        }
        return handed;
    }
    let overlap = (known.len() - from).min(data.len());
    // Bytes, not characters: a stranger's data need not be ASCII.
    let matching = common_prefix_len(&data.as_bytes()[..overlap], &known.as_str().as_bytes()[from..from + overlap]);
    if matching < overlap {
        handed.expansion = known.prefix(from + matching);
        handed.wrong = Some((claimed, from + matching));
    } else if data.len() > overlap {
        handed.expansion = known;
        beyond(&mut handed);
    } else {
        handed.expansion = known.prefix(claimed);
    }
    handed
}

/// Length of the common prefix of two byte strings.
pub(crate) fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
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
