//! The process-wide cache of pi's expansion, grown ahead of the ring.
//!
//! Reads take a snapshot (`Arc<str>`); a growth computes a longer
//! expansion (the next size of a doubling schedule) and publishes it.
//! [`super::ahead`] decides when a growth starts and how urgently;
//! [`super::store`] lets the nodes of one host share what they compute.
//!
//! Who waits for whom: a holder that needs digits the cache lacks (which
//! the growths ahead exist to prevent) joins a full-priority growth already
//! under way that will cover its need: a computation of its own would
//! finish later, competing with it for the same cores. It never waits for
//! an idle-priority growth (that would invert the priorities) and never
//! waits on a lock a background growth holds: without an urgent growth to
//! join, it computes itself. Across processes it waits for a host's
//! urgent computation only a bounded time.

use super::ahead::{self, Cost, Pace, Plan};
use super::chudnovsky::fraction_digits_on;
use super::store::Store;
use super::{common_prefix_len, extended_len, Expansion, Unchecked, Verified, HEAD};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// The smallest cache computed at once (a few milliseconds of work).
const MIN_CACHE_DIGITS: usize = 10_000;

/// A cache of pi's expansion, grown on demand and ahead of it. Growing is
/// blocking: call [`PiDigits::expansion`] and the verifications from a
/// blocking thread, never from an actor.
pub struct PiDigits {
    snapshot: RwLock<Arc<str>>,
    growth: Mutex<Growth>,
    /// Signalled whenever a computation ends.
    grown: Condvar,
    store: Option<Store>,
    /// The clock of the pace measurements.
    origin: Instant,
    max_len: usize,
    /// Threads an urgent computation uses.
    threads: usize,
}

/// What the growths know and do.
#[derive(Default)]
struct Growth {
    pace: Pace,
    cost: Cost,
    running: Vec<Running>,
}

/// A computation under way.
#[derive(Clone, Copy, Debug)]
struct Running {
    digits: usize,
    urgent: bool,
    started: Instant,
    estimate: Duration,
}

/// A computation of digits under way, as monitors are told of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Computing {
    /// The fractional digits it computes.
    pub digits: usize,
    /// How far it is, estimated from the engine's measured speed: 0 to 0.99.
    pub done: f64,
    /// At full priority: the ring is about to need it (or waits for it).
    pub urgent: bool,
}

impl PiDigits {
    /// A cache that will compute at most `max_fraction_digits` digits.
    pub fn new(max_fraction_digits: usize) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        PiDigits {
            snapshot: RwLock::new(Arc::from(HEAD)),
            growth: Mutex::new(Growth::default()),
            grown: Condvar::new(),
            store: None,
            origin: Instant::now(),
            max_len: HEAD.len() + max_fraction_digits,
            threads,
        }
    }

    /// Share computed digits with the other nodes of this host through
    /// `store` (read before computing, written after).
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
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

    /// The ring's expansion has `len` characters now: measure the pace, and
    /// start a growth ahead of need on a thread of its own if
    /// [`ahead::plan`] says so (urgent: full priority, two threads; early:
    /// idle priority, one thread). Returns the thread when it started one.
    pub fn grow_ahead(self: &Arc<Self>, len: usize) -> Option<std::thread::JoinHandle<()>> {
        let cached = self.cached_digits();
        let max_digits = self.max_len - HEAD.len();
        let mut growth = self.lock_growth();
        let now = self.origin.elapsed();
        growth.pace.record(now, len);
        let next = ahead::next_size(cached, MIN_CACHE_DIGITS, max_digits);
        let pace = growth.pace.chars_per_sec(now);
        let plan = ahead::plan(len.saturating_sub(HEAD.len()), cached, next, pace, growth.cost.estimate(next))?;
        // One growth of a kind at a time; an urgent one may join an idle
        // one that runs (it will finish first), not the other way round.
        if growth.running.iter().any(|r| r.digits >= plan.digits && (r.urgent || !plan.urgent)) {
            return None;
        }
        let running = self.start(&mut growth, plan);
        drop(growth);
        let pi = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("pi-ahead".into()).spawn(move || {
            if !plan.urgent {
                lower_this_threads_priority();
            }
            pi.compute(running);
        });
        match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                log::warn!("pi: cannot start computing ahead: {e}");
                self.finish(running, None);
                None
            }
        }
    }

    /// The computation this node is doing now, if any (the largest).
    pub fn computing(&self) -> Option<Computing> {
        let growth = self.lock_growth();
        let running = growth.running.iter().max_by_key(|r| (r.digits, r.urgent))?;
        let done = running.started.elapsed().as_secs_f64() / running.estimate.as_secs_f64().max(1e-3);
        Some(Computing { digits: running.digits, done: done.min(0.99), urgent: running.urgent })
    }

    /// The longest correct prefix of `data` (PROTOCOL section 4). Blocking:
    /// data longer than the cache makes it compute, a doubling at a time,
    /// and stop at the first wrong digit.
    pub fn verify(&self, data: &str) -> Verified {
        let unchecked = Unchecked { text: Arc::from(data), offset: 0, len: data.len().min(self.max_len) };
        let verified = self.verify_unchecked(&unchecked);
        Verified { expansion: verified.expansion, received_len: data.len() }
    }

    /// The longest correct expansion that `unchecked` shows (PROTOCOL
    /// section 4): its characters compared with pi's from its offset on.
    /// Blocking: grows the cache a doubling at a time while everything
    /// compared so far is pi, so a long claim whose digits go wrong early
    /// costs about twice the computation of its correct part, not of its
    /// claimed length.
    pub fn verify_unchecked(&self, unchecked: &Unchecked) -> Verified {
        loop {
            let cached = self.snapshot().len();
            if unchecked.offset <= cached {
                let verified = self.compare_unchecked(unchecked);
                if cached >= unchecked.len || verified.expansion.len() < cached.min(unchecked.len) {
                    return verified;
                }
            }
            // All compared so far is pi (or the text starts beyond the
            // cache): one doubling more.
            let next = HEAD.len() + ahead::next_size(cached - HEAD.len(), MIN_CACHE_DIGITS, self.max_len - HEAD.len());
            self.grow_to(next.min(unchecked.len));
            if self.snapshot().len() <= cached {
                // At the maximum: nothing more can be confirmed.
                return self.compare_unchecked(unchecked);
            }
        }
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

    /// Make the cache hold at least `len` characters, now: join an urgent
    /// growth under way that covers it, or compute (urgently) the first
    /// size of the schedule that does.
    fn grow_to(&self, len: usize) {
        let len = len.min(self.max_len);
        let max_digits = self.max_len - HEAD.len();
        let mut growth = self.lock_growth();
        loop {
            let cached = self.cached_digits();
            if HEAD.len() + cached >= len {
                return;
            }
            if growth.running.iter().any(|r| r.urgent && HEAD.len() + r.digits >= len) {
                growth = self.grown.wait(growth).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let mut digits = ahead::next_size(cached, MIN_CACHE_DIGITS, max_digits);
            while HEAD.len() + digits < len {
                digits = ahead::next_size(digits, MIN_CACHE_DIGITS, max_digits);
            }
            let running = self.start(&mut growth, Plan { digits, urgent: true });
            drop(growth);
            self.compute(running);
            return;
        }
    }

    /// Register a computation (under the growth lock).
    fn start(&self, growth: &mut Growth, plan: Plan) -> Running {
        let estimate = growth.cost.estimate(plan.digits);
        let running = Running { digits: plan.digits, urgent: plan.urgent, started: Instant::now(), estimate };
        growth.running.push(running);
        if plan.urgent && plan.digits >= 1_000_000 {
            log::info!("pi: computing {} digits (about {:.1} s)", plan.digits, estimate.as_secs_f64());
        }
        running
    }

    /// Carry out a registered computation: from the host's store if it has
    /// the digits (waiting a bounded time for a host's urgent computation
    /// under way), else with the engine; publish, share, unregister.
    fn compute(&self, running: Running) {
        let digits = running.digits;
        if self.cached_digits() < MIN_CACHE_DIGITS {
            // The first digits are always this node's own (2 ms): shared
            // ones must agree with them.
            self.publish(fraction_digits_on(MIN_CACHE_DIGITS.min(digits), 1));
        }
        let from_store = |pi: &Self| pi.store.as_ref().and_then(|s| s.load(digits)).filter(|d| pi.agrees(d));
        let mut text = from_store(self);
        let mut _lock = None;
        if text.is_none() && running.urgent {
            if let Some(store) = &self.store {
                _lock = store.lock(running.estimate * 3 + Duration::from_secs(1));
                text = from_store(self);
            }
        }
        let shared = text.is_some();
        let measured = match text {
            Some(_) => None,
            None => {
                let threads = if running.urgent { self.threads } else { 1 };
                let started = Instant::now();
                let computed = fraction_digits_on(digits, threads);
                let took = started.elapsed();
                log::debug!("pi: computed {digits} digits in {:.3} s on {threads} thread(s)", took.as_secs_f64());
                if let Some(store) = &self.store {
                    store.save(&computed);
                }
                text = Some(computed);
                running.urgent.then_some(took)
            }
        };
        let took = running.started.elapsed().as_secs_f64();
        let how = if shared { "from the host's shared digits" } else { "computed" };
        let level = if running.urgent && digits >= 1_000_000 { log::Level::Info } else { log::Level::Debug };
        log::log!(level, "pi: {digits} digits ready after {took:.2} s ({how})");
        if let Some(digits) = text {
            self.publish(digits);
        }
        self.finish(running, measured);
    }

    /// Whether `digits` (read from the host's store) agree with every digit
    /// this cache has.
    fn agrees(&self, digits: &str) -> bool {
        let ours = self.snapshot();
        let ours = &ours.as_bytes()[HEAD.len()..];
        let n = ours.len().min(digits.len());
        let agree = ours[..n] == digits.as_bytes()[..n];
        if !agree {
            log::warn!(
                "pi: the host's shared digits disagree with this node's at or before digit {n}; computing instead"
            );
        }
        agree
    }

    /// Make `digits` (fractional) the cache if longer than what it has.
    fn publish(&self, digits: String) {
        let mut text = String::with_capacity(HEAD.len() + digits.len());
        text.push_str(HEAD);
        text.push_str(&digits);
        drop(digits);
        let mut snapshot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if snapshot.len() < text.len() {
            *snapshot = Arc::from(text);
        }
    }

    /// Unregister a computation and wake whoever waits for one.
    fn finish(&self, running: Running, took: Option<Duration>) {
        let mut growth = self.lock_growth();
        if let Some(i) = growth.running.iter().position(|r| r.started == running.started && r.digits == running.digits)
        {
            growth.running.swap_remove(i);
        }
        if let Some(took) = took {
            growth.cost.measured(running.digits, took);
        }
        drop(growth);
        self.grown.notify_all();
    }

    fn lock_growth(&self) -> MutexGuard<'_, Growth> {
        self.growth.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Let hand-offs and heartbeats go first: a computation ahead of need that
/// is not urgent has time, and many nodes on one machine would otherwise
/// starve the ring while they all grow their caches at once.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_long_claim_that_goes_wrong_early_is_checked_only_a_doubling_past_its_error() {
        let reference = PiDigits::new(1_000_000).expansion(40_002);
        let mut claim = reference.as_str()[..30_002].to_owned();
        claim.push_str(&"0".repeat(900_000));
        let pi = PiDigits::new(1_000_000);
        let verified = pi.verify(&claim);
        assert!(verified.expansion.len() >= 30_002 && verified.expansion.len() < 30_020, "{verified:?}");
        assert!(pi.cached_digits() <= 80_000, "computed {} digits for a claim wrong after 30,000", pi.cached_digits());
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
    fn nodes_sharing_a_store_take_what_another_computed() {
        let dir = std::env::temp_dir().join(format!("pi-ring-cache-share-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = PiDigits::new(1_000_000).with_store(Store::open(&dir).unwrap());
        first.expansion(40_000);
        let second = PiDigits::new(1_000_000).with_store(Store::open(&dir).unwrap());
        second.expansion(40_000);
        assert_eq!(second.snapshot(), first.snapshot());
        // What was taken, not computed: a file that agrees with the first
        // 10,000 digits (which a node always computes itself) is believed
        // beyond them (the trust SECURITY.md states).
        let mut planted = first.snapshot()[HEAD.len()..HEAD.len() + MIN_CACHE_DIGITS].to_owned();
        planted.push_str(&"7".repeat(70_000));
        std::fs::write(dir.join("pi-v1-80000.txt"), &planted).unwrap();
        let third = PiDigits::new(1_000_000).with_store(Store::open(&dir).unwrap());
        assert!(third.expansion(70_000).as_str().ends_with("7777"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn shared_digits_that_disagree_with_ours_are_not_taken() {
        let dir = std::env::temp_dir().join(format!("pi-ring-cache-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pi = PiDigits::new(1_000_000).with_store(Store::open(&dir).unwrap());
        pi.expansion(100); // 10,000 digits, computed and shared
        let mut bad = pi.snapshot()[HEAD.len()..].to_owned();
        bad.replace_range(5..6, "0");
        bad.push_str(&"1".repeat(30_000));
        std::fs::write(dir.join(format!("pi-v1-{}.txt", bad.len())), &bad).unwrap();
        let e = pi.expansion(30_000);
        assert_eq!(&e.as_str()[..12], "3,1415926535", "computed, not taken");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
