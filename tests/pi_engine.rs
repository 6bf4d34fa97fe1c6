//! The pi engine against the reference digits in shared/pi/pi-1m.txt.

use pi_ring::pi::{fraction_digits, PiDigits};
use std::path::PathBuf;

fn reference() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/pi/pi-1m.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let digits = text.trim_end().strip_prefix("3.").expect("pi-1m.txt starts with 3.");
    assert_eq!(digits.len(), 1_000_000);
    digits.to_string()
}

#[test]
fn engine_matches_reference_at_many_lengths() {
    let reference = reference();
    // Lengths around the run of six 9s at decimals 762..767 included.
    for n in [1, 2, 19, 20, 21, 100, 760, 761, 762, 763, 764, 765, 766, 767, 768, 1000, 4321, 20_000] {
        assert_eq!(fraction_digits(n), reference[..n], "first {n} digits");
    }
}

#[test]
fn engine_matches_reference_for_the_whole_million() {
    let reference = reference();
    let started = std::time::Instant::now();
    let digits = fraction_digits(1_000_000);
    eprintln!("1,000,000 digits in {:.2} s", started.elapsed().as_secs_f64());
    assert!(digits == reference, "the million digits differ from pi-1m.txt");
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
