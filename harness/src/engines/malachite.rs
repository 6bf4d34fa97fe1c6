//! The engine pi-ring shipped before GMP: the Chudnovsky series with a
//! plain binary splitting on malachite (pure Rust), kept only to be
//! measured beside the one that ships (`pi-ring-bench --only pi`).

use malachite_base::num::arithmetic::traits::{FloorSqrt, Pow};
use malachite_nz::integer::Integer;
use malachite_nz::natural::Natural;

/// Digits computed beyond what is asked, so that truncation is exact.
const GUARD_DIGITS: usize = 24;

/// 640320^3 / 24, the denominator constant of the Chudnovsky series.
const C3_OVER_24: u64 = 10_939_058_860_032_000;

/// Each term of the series adds about 14.18 correct digits.
const DIGITS_PER_TERM: f64 = 14.181_647_462_725_477;

/// The first `n` decimal digits of pi after the point, as ASCII digits.
///
/// Exact: the result is computed with guard digits and, in the rare case
/// where the guard digits cannot decide the truncation (a run of 9s or 0s
/// spanning them), recomputed with more.
pub fn fraction_digits(n: usize) -> String {
    let mut guard = GUARD_DIGITS;
    loop {
        let scaled = floor_pi_scaled(n + guard);
        // `scaled` is floor(pi * 10^(n + guard)) up to an error of a few
        // units in the last place: "3" followed by n + guard digits.
        let text = scaled.to_string();
        debug_assert_eq!(text.len(), n + guard + 1);
        let guard_part = &text.as_bytes()[1 + n..];
        let undecided = guard_part.iter().all(|&d| d == b'9') || guard_part.iter().all(|&d| d == b'0');
        if !undecided {
            let mut digits = text;
            digits.truncate(1 + n);
            digits.remove(0);
            return digits;
        }
        guard *= 2;
    }
}

/// floor(pi * 10^digits), within a few units in the last place.
fn floor_pi_scaled(digits: usize) -> Natural {
    let terms = (digits as f64 / DIGITS_PER_TERM) as u64 + 2;
    let (_p, q, t) = split(0, terms);
    let one = Natural::from(10u32).pow(digits as u64);
    // sqrt(10005) * 10^digits, as an integer.
    let sqrt_c = (Natural::from(10_005u32) * &one * &one).floor_sqrt();
    let q = Natural::try_from(q).expect("the Chudnovsky Q is positive");
    let numerator = Natural::from(426_880u32) * sqrt_c * q;
    let t = Natural::try_from(t).expect("the Chudnovsky sum is positive");
    numerator / t
}

/// Binary splitting over terms `a..b`: returns (P, Q, T).
fn split(a: u64, b: u64) -> (Integer, Integer, Integer) {
    if b - a == 1 {
        let (p, q) = if a == 0 {
            (Integer::from(1u32), Integer::from(1u32))
        } else {
            let p = Integer::from(6 * a - 5) * Integer::from(2 * a - 1) * Integer::from(6 * a - 1);
            let q = Integer::from(a) * Integer::from(a) * Integer::from(a) * Integer::from(C3_OVER_24);
            (p, q)
        };
        let mut t = &p * Integer::from(13_591_409u64 + 545_140_134u64 * a);
        if a % 2 == 1 {
            t = -t;
        }
        return (p, q, t);
    }
    let m = (a + b) / 2;
    let (p1, q1, t1) = split(a, m);
    let (p2, q2, t2) = split(m, b);
    let t = t1 * &q2 + &p1 * t2;
    (p1 * p2, q1 * q2, t)
}
