//! The pi engine against the reference digits in shared/pi/pi-1m.txt.

use pi_ring::pi::{fraction_digits, PiDigits};
use std::path::PathBuf;

fn reference() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/pi/pi-1m.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let digits = text
        .trim_end()
        .strip_prefix("3.")
        .expect("pi-1m.txt starts with 3.");
    assert_eq!(digits.len(), 1_000_000);
    digits.to_string()
}

#[test]
fn engine_matches_reference_at_many_lengths() {
    let reference = reference();
    // Lengths around the run of six 9s at decimals 762..767 included.
    for n in [
        1, 2, 19, 20, 21, 100, 760, 761, 762, 763, 764, 765, 766, 767, 768, 1000, 4321, 20_000,
    ] {
        assert_eq!(fraction_digits(n), reference[..n], "first {n} digits");
    }
}

#[test]
fn engine_matches_reference_for_the_whole_million() {
    let reference = reference();
    let started = std::time::Instant::now();
    let digits = fraction_digits(1_000_000);
    eprintln!(
        "1,000,000 digits in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        digits == reference,
        "the million digits differ from pi-1m.txt"
    );
}
