//! Decimal digits of pi by the Chudnovsky series with binary splitting, on
//! GMP (through `rug`).
//!
//! This is the pure number crunching: [`fraction_digits`] returns the first
//! `n` decimal digits of pi after the point. It is CPU-bound and blocking;
//! callers run it off the actor thread (see [`super::PiDigits`]).
//!
//! GMP was picked by measurement (`pi-ring-bench --only pi`, the README's
//! figures): on the 2-core reference machine it computes 10,000,000 digits
//! about twice as fast as the pure-Rust engine this replaced on one thread,
//! and three times as fast on two, where the two halves of the series, the
//! square root, the top products and the decimal conversion run at once.

use rug::ops::Pow;
use rug::Integer;

/// Digits computed beyond what is asked, so that truncation is exact.
const GUARD_DIGITS: usize = 24;

/// 640320^3 / 24, the denominator constant of the Chudnovsky series.
const C3_OVER_24: u64 = 10_939_058_860_032_000;

/// Each term of the series adds about 14.18 correct digits.
const DIGITS_PER_TERM: f64 = 14.181_647_462_725_477;

/// Below this many terms a split is not worth a thread of its own.
const PARALLEL_MIN_TERMS: u64 = 2_000;

/// The first `n` decimal digits of pi after the point, as ASCII digits, on
/// up to two threads.
pub fn fraction_digits(n: usize) -> String {
    fraction_digits_on(n, 2)
}

/// [`fraction_digits`] on at most `threads` threads (1 or 2; more are not
/// used).
///
/// Exact: the result is computed with guard digits and, in the rare case
/// where the guard digits cannot decide the truncation (a run of 9s or 0s
/// spanning them), recomputed with more.
pub fn fraction_digits_on(n: usize, threads: usize) -> String {
    let mut guard = GUARD_DIGITS;
    loop {
        let scaled = floor_pi_scaled(n + guard, threads >= 2);
        // `scaled` is floor(pi * 10^(n + guard)) up to an error of a few
        // units in the last place: "3" followed by n + guard digits.
        let mut text = decimal(scaled, n + guard + 1, threads >= 2);
        debug_assert_eq!(text.len(), n + guard + 1);
        let guard_part = &text.as_bytes()[1 + n..];
        let undecided = guard_part.iter().all(|&d| d == b'9') || guard_part.iter().all(|&d| d == b'0');
        if !undecided {
            text.truncate(1 + n);
            text.remove(0);
            return text;
        }
        guard *= 2;
    }
}

/// The decimal digits of `x`, which has `len` of them; on two threads, its
/// upper and lower halves at once.
fn decimal(x: Integer, len: usize, parallel: bool) -> String {
    if !parallel || len < 100_000 {
        return x.to_string_radix(10);
    }
    let low_len = len / 2;
    let (high, low) = x.div_rem(Integer::from(10u32).pow(low_len as u32));
    let (mut text, low) = std::thread::scope(|s| {
        let low = s.spawn(move || low.to_string_radix(10));
        (high.to_string_radix(10), low.join().expect("the conversion thread does not panic"))
    });
    // The lower half without its leading zeros: put them back.
    text.extend(std::iter::repeat_n('0', low_len - low.len()));
    text.push_str(&low);
    text
}

/// floor(pi * 10^digits), within a few units in the last place:
/// 426880 * sqrt(10005) * Q / T, all scaled by 10^digits.
fn floor_pi_scaled(digits: usize, parallel: bool) -> Integer {
    let terms = (digits as f64 / DIGITS_PER_TERM) as u64 + 2;
    let sqrt_c = || {
        // sqrt(10005) * 10^digits, as an integer.
        let one = Integer::from(10u32).pow(digits as u32);
        let mut square = one.square();
        square *= 10_005u32;
        square.sqrt()
    };
    let (series, sqrt_c) = if parallel && terms >= PARALLEL_MIN_TERMS {
        std::thread::scope(|s| {
            let root = s.spawn(sqrt_c);
            let series = split_top(terms, true);
            (series, root.join().expect("the square root thread does not panic"))
        })
    } else {
        (split_top(terms, false), sqrt_c())
    };
    let Series { q, t, .. } = series;
    // Q and T carry many more bits than the result needs: drop the low
    // ones of both (the quotient changes by far less than the guard
    // digits allow), so that the division works on numbers of the
    // result's size.
    let keep = (digits as f64 * std::f64::consts::LOG2_10) as u32 + 128;
    let excess = t.significant_bits().saturating_sub(keep);
    let (q, t) = (q >> excess, t >> excess);
    let mut numerator = sqrt_c * q;
    numerator *= 426_880u32;
    numerator / t
}

/// The series' sums over a range of terms (binary splitting): the
/// products P and Q, and the sum T.
struct Series {
    p: Integer,
    q: Integer,
    t: Integer,
}

/// The whole series over `0..terms`; on two threads, its two halves at
/// once (the upper half's terms are a little larger, so it gets a little
/// less).
fn split_top(terms: u64, parallel: bool) -> Series {
    if !parallel || terms < PARALLEL_MIN_TERMS {
        return split(0, terms, false);
    }
    let m = terms * 49 / 100;
    let (left, right) = std::thread::scope(|s| {
        let right = s.spawn(move || split(m, terms, false));
        let left = split(0, m, true);
        (left, right.join().expect("the series thread does not panic"))
    });
    // The top's products, the largest of all, two at a time.
    let Series { p: p1, q: q1, t: t1 } = left;
    let Series { q: q2, t: t2, .. } = right;
    let (t, q) = std::thread::scope(|s| {
        let p1_t2 = s.spawn(|| p1 * t2);
        let q = Integer::from(&q1 * &q2);
        let mut t = t1 * q2;
        t += p1_t2.join().expect("the series thread does not panic");
        (t, q)
    });
    Series { p: Integer::new(), q, t }
}

/// Binary splitting over terms `a..b`. `need_p`: the caller uses P (the
/// rightmost ranges, and the top, do not).
fn split(a: u64, b: u64, need_p: bool) -> Series {
    if b - a <= LEAF_TERMS {
        return leaf(a, b, need_p);
    }
    let m = (a + b) / 2;
    let left = split(a, m, true);
    let right = split(m, b, need_p);
    combine(left, right, need_p)
}

/// The sums over `a..b` from those over `a..m` and `m..b`:
/// P = P1 P2, Q = Q1 Q2, T = T1 Q2 + P1 T2.
fn combine(left: Series, right: Series, need_p: bool) -> Series {
    let Series { p: p1, q: q1, t: t1 } = left;
    let Series { p: p2, q: q2, t: t2 } = right;
    let mut t = t1 * &q2;
    t += &p1 * t2;
    let q = q1 * q2;
    let p = if need_p { p1 * p2 } else { Integer::new() };
    Series { p, q, t }
}

/// Ranges of at most this many terms are summed one term after the other.
const LEAF_TERMS: u64 = 8;

/// Terms `a..b` one after the other, every factor a machine word: adding
/// term k to the sums over `a..k` is T = T q_k + P p_k c_k, P = P p_k,
/// Q = Q q_k, with q_k = k^3 (640320^3 / 24), p_k = (6k-5)(2k-1)(6k-1) and
/// c_k = 13591409 + 545140134 k. (Cheaper than splitting numbers of a few
/// words: about 5 % of the whole computation at 10M digits.)
fn leaf(a: u64, b: u64, need_p: bool) -> Series {
    let mut s = term(a);
    for k in a + 1..b {
        s.t *= k * k * k;
        s.t *= C3_OVER_24;
        s.p *= (6 * k - 5) * (2 * k - 1);
        s.p *= 6 * k - 1;
        let c = Integer::from(&s.p * (13_591_409u64 + 545_140_134u64 * k));
        if k % 2 == 1 {
            s.t -= c;
        } else {
            s.t += c;
        }
        s.q *= k * k * k;
        s.q *= C3_OVER_24;
    }
    if !need_p {
        s.p = Integer::new();
    }
    s
}

/// Term `a` of the series.
fn term(a: u64) -> Series {
    if a == 0 {
        return Series { p: Integer::from(1u32), q: Integer::from(1u32), t: Integer::from(13_591_409u64) };
    }
    let mut p = Integer::from(6 * a - 5);
    p *= 2 * a - 1;
    p *= 6 * a - 1;
    let mut q = Integer::from(a);
    q *= a;
    q *= a;
    q *= C3_OVER_24;
    let mut t = p.clone();
    t *= 13_591_409u64 + 545_140_134u64 * a;
    if a % 2 == 1 {
        t = -t;
    }
    Series { p, q, t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_digits() {
        assert_eq!(fraction_digits(1), "1");
        assert_eq!(fraction_digits(20), "14159265358979323846");
        assert_eq!(fraction_digits(0), "");
    }

    #[test]
    fn one_thread_and_two_agree() {
        // Enough terms for the parallel split.
        let n = 50_000;
        assert_eq!(fraction_digits_on(n, 1), fraction_digits_on(n, 2));
    }
}
