//! `pi-ring-verify`: check expansion files against digits of pi computed
//! here, independently of the ring.

use clap::Parser;
use pi_ring::pi::PiDigits;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check that files hold correct digits of pi: a node's saved expansion
/// (`--data-dir`'s expansion.txt, `3,1415...`) or any `3.1415...` text.
/// Computes pi itself; exits non-zero if any file has a wrong digit.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Files to check
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let pi = PiDigits::new(usize::MAX / 4);
    let mut ok = true;
    for path in &args.files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                ok = false;
                continue;
            }
        };
        let text = text.trim_end();
        let wire = text.replacen("3.", "3,", 1);
        let verified = pi.verify(&wire);
        let digits = verified.expansion.fraction_digits();
        if text.is_empty() {
            println!("{}: empty", path.display());
        } else if verified.is_intact() {
            println!("{}: {digits} digits of pi, all correct", path.display());
        } else {
            ok = false;
            println!(
                "{}: WRONG from character {} on ({} digits correct, {} characters in the file)",
                path.display(),
                verified.expansion.len() + 1,
                digits,
                verified.received_len
            );
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
