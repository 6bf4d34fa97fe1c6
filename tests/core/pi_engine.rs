//! The pi engine checked without any reference file: against SHA-256
//! checkpoints of the wire form `3,` + the first N fractional digits (N =
//! 1,000 to 1,000,000), the digits around the Feynman point, and an
//! independent second method (a Rabinowitz-Wagon spigot in plain integer
//! arithmetic) for the first 3,000 digits.

use pi_ring::pi::{fraction_digits, PiDigits};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// SHA-256 (hex) of `3,` followed by the first N fractional digits.
const CHECKPOINTS: [(usize, &str); 4] = [
    (1_000, "e7794f4e23bcc2b6652ae9af9239b0ff233284bab4c8d4602fe20eff464a76e6"),
    (10_000, "026fcad21e11a661011652adc94b86fd821c887554e5e306b8e68c68b59f8a8e"),
    (100_000, "85a41b2f5e6b9849fe1d62d08f57a35b04af13e9e43f5d981d11e2f2be82a230"),
    (1_000_000, "b0822ac09ecef486feb524a9db819c2563094098a6e981d4267d40d9ba23361e"),
];

/// Fractional digits 751 to 770: the six 9s of the Feynman point, where a
/// computation without guard digits goes wrong.
const FEYNMAN_751_770: &str = "51870721134999999837";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The first million fractional digits, computed once by the engine and
/// checked against the 1,000,000-digit checkpoint.
fn reference() -> &'static str {
    static DIGITS: OnceLock<String> = OnceLock::new();
    DIGITS.get_or_init(|| {
        let digits = fraction_digits(1_000_000);
        assert_eq!(sha256_hex(format!("3,{digits}").as_bytes()), CHECKPOINTS[3].1, "the million digits are wrong");
        digits
    })
}

/// pi as `3` followed by `n` fractional digits, by the spigot of
/// Rabinowitz and Wagon (1995): no big integers, nothing shared with the
/// engine (which uses the Chudnovsky series with binary splitting).
fn spigot(n: usize) -> String {
    let want = n + 1 + 10; // ten more: the last digits may still carry
    let len = want * 10 / 3 + 1;
    let mut a = vec![2u64; len];
    let (mut out, mut nines, mut predigit) = (String::new(), 0usize, 0u64);
    let mut first = true;
    for _ in 0..want {
        let mut q = 0u64;
        for i in (1..=len as u64).rev() {
            let x = 10 * a[i as usize - 1] + q * i;
            a[i as usize - 1] = x % (2 * i - 1);
            q = x / (2 * i - 1);
        }
        a[0] = q % 10;
        q /= 10;
        if q == 9 {
            nines += 1;
        } else if q == 10 {
            out.push(char::from(b'0' + predigit as u8 + 1));
            out.extend(std::iter::repeat_n('0', nines));
            predigit = 0;
            nines = 0;
        } else {
            if !first {
                out.push(char::from(b'0' + predigit as u8));
            }
            first = false;
            predigit = q;
            out.extend(std::iter::repeat_n('9', nines));
            nines = 0;
        }
    }
    out.push(char::from(b'0' + predigit as u8));
    out.truncate(n + 1);
    out
}

#[test]
fn engine_matches_the_sha256_checkpoints() {
    for (n, expected) in CHECKPOINTS {
        let wire = format!("3,{}", &reference()[..n]);
        assert_eq!(sha256_hex(wire.as_bytes()), expected, "3, + {n} digits");
    }
}

#[test]
fn engine_has_the_feynman_point_right_at_every_length_around_it() {
    assert_eq!(&reference()[750..770], FEYNMAN_751_770);
    // Computed afresh at lengths that end inside and around the six 9s.
    for n in 755..=772 {
        assert_eq!(fraction_digits(n), reference()[..n], "first {n} digits");
    }
}

#[test]
fn engine_agrees_with_an_independent_spigot() {
    let spigot = spigot(3_000);
    assert_eq!(&spigot[..1], "3");
    assert_eq!(&spigot[1..], &reference()[..3_000]);
    for n in [1, 2, 19, 20, 21, 100, 1000, 2999] {
        assert_eq!(fraction_digits(n), spigot[1..=n], "first {n} digits");
    }
}

#[test]
fn engine_computes_the_million_in_one_go() {
    let started = std::time::Instant::now();
    let digits = fraction_digits(1_000_000);
    eprintln!("1,000,000 digits in {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(sha256_hex(format!("3,{digits}").as_bytes()), CHECKPOINTS[3].1);
}

#[test]
fn cache_serves_twenty_digit_extensions_that_match_the_reference() {
    let reference = reference();
    let pi = PiDigits::new(1_000_000);
    let mut expansion = pi_ring::pi::Expansion::empty();
    for _ in 0..5_000 {
        expansion = pi.extend(&expansion);
    }
    assert_eq!(expansion.fraction_digits(), 100_000);
    assert_eq!(&expansion.as_str()[2..], &reference[..100_000]);
    assert!(expansion.as_str().starts_with("3,"));
    // Grown about twice ahead, a logarithmic number of times.
    assert!(pi.cached_digits() >= 100_000 && pi.cached_digits() <= 220_000, "{}", pi.cached_digits());
}

#[test]
fn verify_grows_the_cache_for_longer_data_and_cuts_at_the_first_wrong_digit() {
    let reference = reference();
    let pi = PiDigits::new(1_000_000);
    let good = format!("3,{}", &reference[..50_000]);
    let verified = pi.verify(&good);
    assert!(verified.is_intact());
    assert_eq!(verified.expansion.len(), 50_002);
    // A wrong digit inside the run of six 9s (decimals 762..767).
    let mut bad = good.clone().into_bytes();
    bad[2 + 764] = b'8';
    let verified = pi.verify(std::str::from_utf8(&bad).unwrap());
    assert_eq!(verified.expansion.len(), 2 + 764);
    assert_eq!(verified.received_len, 50_002);
    // Garbage at the head keeps nothing; a bare "3" is a correct prefix.
    assert_eq!(pi.verify("x,1415").expansion.len(), 0);
    assert_eq!(pi.verify("3").expansion.len(), 1);
    assert_eq!(pi.verify("3.1415").expansion.len(), 1);
}

#[test]
fn the_cache_never_grows_past_its_maximum() {
    let pi = PiDigits::new(30);
    let e = pi.expansion(1_000);
    assert_eq!(e.len(), 32);
    let long = format!("3,{}", "1".repeat(100));
    assert_eq!(pi.verify(&long).expansion.len(), 3);
    assert_eq!(pi.cached_digits(), 30);
}
