//! Digits of pi for the ring: a shared, growing cache of the expansion and
//! the [`Expansion`] values that point into it (PROTOCOL section 4).
//!
//! Every expansion a node keeps is correct pi by construction: it is a
//! prefix of the cache, and data received from peers is turned into an
//! `Expansion` only through [`PiDigits::verify`], which keeps the longest
//! correct prefix. Cloning an expansion is cheap (an `Arc` and a length), so
//! the whole expansion can travel with every pass without copies.

mod chudnovsky;

pub use chudnovsky::{fraction_digits, fraction_digits_on};

use std::sync::atomic::{AtomicBool, Ordering};
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

/// A process-wide cache of pi's expansion, grown on demand.
///
/// Reads take a snapshot (`Arc<str>`); growth computes a longer expansion
/// (about twice what is needed, so that growing in 20-digit steps computes
/// only a logarithmic number of times) and publishes it. Growing is
/// blocking: call it from a blocking thread, never from an actor.
pub struct PiDigits {
    snapshot: RwLock<Arc<str>>,
    grow_lock: Mutex<()>,
    /// A growth ahead of need runs on its own thread.
    growing_ahead: AtomicBool,
    max_len: usize,
}

impl PiDigits {
    /// A cache that will compute at most `max_fraction_digits` digits.
    pub fn new(max_fraction_digits: usize) -> Self {
        PiDigits {
            snapshot: RwLock::new(Arc::from(HEAD)),
            grow_lock: Mutex::new(()),
            growing_ahead: AtomicBool::new(false),
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

    /// Grow the cache ahead of need, on a thread of its own, once `len`
    /// (an expansion just used) passes a quarter of it: with spare CPU, the
    /// ring then never waits for a doubling on its hand-off path. (With
    /// none, e.g. 250 nodes on 2 cores, the idle-priority thread starves
    /// and a holder computes when it needs the digits.) Returns the thread when
    /// it started one (none while another growth ahead runs, or at the
    /// maximum).
    pub fn grow_ahead(self: &Arc<Self>, len: usize) -> Option<std::thread::JoinHandle<()>> {
        let cached = self.snapshot().len();
        if len.saturating_mul(4) < cached || cached >= self.max_len {
            return None;
        }
        if self.growing_ahead.swap(true, Ordering::AcqRel) {
            return None;
        }
        let pi = Arc::clone(self);
        // Twice the current cache: grow_to computes twice what it is asked.
        let target = (cached + 1).min(pi.max_len);
        let spawned = std::thread::Builder::new().name("pi-ahead".into()).spawn(move || {
            lower_this_threads_priority();
            pi.grow_unlocked(target);
            pi.growing_ahead.store(false, Ordering::Release);
        });
        match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                log::warn!("pi: cannot start computing ahead: {e}");
                self.growing_ahead.store(false, Ordering::Release);
                None
            }
        }
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

    /// The longest correct expansion that `unchecked` shows (PROTOCOL
    /// section 4): its characters compared with pi's from its offset on.
    /// Blocking: computes as far as it claims (at most the maximum).
    pub fn verify_unchecked(&self, unchecked: &Unchecked) -> Verified {
        if self.snapshot().len() < unchecked.len {
            self.grow_to(unchecked.len);
        }
        self.compare_unchecked(unchecked)
    }

    /// [`Self::verify_unchecked`] if the cache already reaches as far as
    /// `unchecked` claims (a comparison, never computing); `None` if it
    /// does not.
    pub fn verify_unchecked_cached(&self, unchecked: &Unchecked) -> Option<Verified> {
        (self.snapshot().len() >= unchecked.len).then(|| self.compare_unchecked(unchecked))
    }

    fn compare_unchecked(&self, unchecked: &Unchecked) -> Verified {
        let text = self.snapshot();
        let start = unchecked.offset.min(text.len());
        let end = unchecked.len.min(text.len());
        let claimed = &unchecked.text.as_bytes()[..unchecked.len.saturating_sub(unchecked.offset)];
        let matching = common_prefix_len(claimed, &text.as_bytes()[start..end.max(start)]);
        // (The cache always reaches the offset once grown; if not, nothing
        // is confirmed.)
        let len = if unchecked.offset <= text.len() { start + matching } else { 0 };
        Verified { expansion: Expansion { text, len }, received_len: unchecked.len }
    }

    /// Check `data` against the digits computed so far, never computing:
    /// the longest correct prefix, and, when all of the cache matches and
    /// `data` goes further, the rest to check later ([`Unchecked`]).
    /// Cheap: a comparison.
    pub fn verify_cached(&self, data: &str) -> (Verified, Option<Unchecked>) {
        let text = self.snapshot();
        let len = common_prefix_len(data.as_bytes(), text.as_bytes());
        let beyond = len == text.len() && data.len() > len && len < self.max_len;
        if beyond {
            let checked = Expansion { text, len };
            let unchecked = Unchecked { text: Arc::from(data), offset: 0, len: data.len().min(self.max_len) };
            return (Verified { expansion: checked, received_len: len }, Some(unchecked));
        }
        (Verified { expansion: Expansion { text, len }, received_len: data.len() }, None)
    }

    /// Compute and publish a cache of at least `len` characters. Callers
    /// that need digits now do not wait for a growth ahead that runs at a
    /// low priority (that would invert the priorities): they compute
    /// themselves, and the longer result wins.
    fn grow_to(&self, len: usize) {
        let _guard = self.grow_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.grow_unlocked(len);
    }

    fn grow_unlocked(&self, len: usize) {
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
        let mut snapshot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if snapshot.len() < text.len() {
            *snapshot = Arc::from(text);
        }
    }
}

/// Let hand-offs and heartbeats go first: a computation ahead of need has
/// time, and many nodes on one machine would otherwise starve the ring
/// while they all grow their caches at once.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SCHED_IDLE: runs only on a core nothing else wants, and yields
        // it at once when a hand-off wakes up; niceness 19 if refused.
        // SAFETY: pid 0 is the calling thread; the parameter is valid for
        // SCHED_IDLE; gettid has no preconditions; setpriority on our own
        // thread id only changes this thread.
        let rc = unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
                0
            } else {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19)
            }
        };
        if rc != 0 {
            log::debug!("pi: cannot lower the priority of computing ahead: {}", std::io::Error::last_os_error());
        }
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
    fn the_cache_grows_ahead_once_a_quarter_of_it_is_used() {
        let pi = Arc::new(PiDigits::new(1_000_000));
        pi.expansion(100);
        let cached = pi.cached_digits();
        assert!(pi.grow_ahead(cached / 5).is_none(), "a fifth used: not yet");
        let thread = pi.grow_ahead(cached / 4 + 10).expect("a quarter used: grows ahead");
        thread.join().unwrap();
        assert!(pi.cached_digits() >= 2 * cached, "{} digits after {cached}", pi.cached_digits());
        // The new cache is still correct pi where the old one was.
        assert_eq!(&pi.snapshot()[..12], "3,1415926535");
    }

    #[test]
    fn growing_ahead_stops_at_the_maximum() {
        let pi = Arc::new(PiDigits::new(10_000));
        pi.expansion(100);
        assert!(pi.grow_ahead(9_000).is_none());
    }

    #[test]
    fn digits_beyond_the_cache_are_left_to_check_later_without_computing() {
        let reference = PiDigits::new(1_000_000).expansion(50_000);
        let pi = PiDigits::new(1_000_000);
        pi.expansion(100);
        let cached = pi.snapshot().len();
        let (verified, unchecked) = pi.verify_cached(reference.as_str());
        assert_eq!(pi.snapshot().len(), cached, "nothing computed");
        assert_eq!(verified.expansion.len(), cached);
        assert!(verified.is_intact());
        let unchecked = unchecked.expect("the rest is left to check");
        assert_eq!(unchecked.len(), 50_000);
        assert_eq!(pi.verify(unchecked.as_str()).expansion.len(), 50_000);

        // A mismatch inside the cache is found at once; nothing is left.
        let mut wrong = reference.as_str().to_owned();
        wrong.replace_range(50..51, if &wrong[50..51] == "0" { "1" } else { "0" });
        let (verified, unchecked) = pi.verify_cached(&wrong);
        assert!(unchecked.is_none());
        assert_eq!(verified.expansion.len(), 50);
        assert!(!verified.is_intact());
    }

    #[test]
    fn extended_len_starts_with_head() {
        assert_eq!(extended_len(0), 22);
        assert_eq!(extended_len(1), 22);
        assert_eq!(extended_len(22), 42);
        assert_eq!(extended_len(25), 45);
    }
}
