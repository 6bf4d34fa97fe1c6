//! Every case can fail: run against deliberately wrong nodes (see
//! `mutant/mod.rs`), the cases of the broken rule fail, and only those.
//!
//! Each test runs the whole strict suite against one mutant, with short
//! timeouts, one test at a time (the cases time the node, so they must
//! not share two cores with another run).

mod mutant;

use mutant::{Fault, Mutant};
use pi_ring_conform::report::{case_lines, Outcome, Report};
use pi_ring_conform::subject::Timing;
use pi_ring_conform::{run, select, Plan};
use std::sync::Mutex;
use std::time::Duration;

/// The timeouts the mutants get, as CI gives `pi-ring-node`.
fn plan() -> Plan {
    let ms = Duration::from_millis;
    let timing = Timing {
        heartbeat: ms(100),
        waiter: ms(400),
        looser_ask: ms(100),
        looser_answer: ms(400),
        generating: ms(400),
        slack: ms(150),
        start: ms(2000),
    };
    Plan { timing, ..Plan::default() }
}

fn run_against(fault: Fault) -> Report {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cases = select(&[], true).expect("every case");
    let report = run(&mut Mutant(fault), &cases, &plan(), |result| print!("{}", case_lines(result)));
    println!("{:?}: {}", fault, report.last_line());
    report
}

/// Run every case against `fault`: exactly `expected` fail, each saying
/// which rule and what it expected and observed.
fn only_these_fail(fault: Fault, expected: &[&str]) {
    let report = run_against(fault);
    for result in &report.results {
        if let Outcome::Failed(failure) = &result.outcome {
            assert!(!failure.expected.is_empty() && !failure.observed.is_empty(), "{} says too little", result.case.id);
        }
    }
    assert_eq!(report.failed_ids(), expected, "cases failed against {fault:?}:\n{}", report.text());
}

#[test]
fn the_core_as_it_ships_passes_every_case() {
    only_these_fail(Fault::None, &[]);
}

#[test]
fn a_node_that_adds_19_digits_fails_the_expansion_cases() {
    only_these_fail(Fault::NineteenDigits, &["4.1", "4.2", "4.3", "4.4"]);
}

/// Its TOKEN_IS_HERE broadcasts while holding are missing: the heartbeat
/// (7.1, and 6.6, which watches the heartbeat to see the token kept) and
/// the broadcasts that answer a claim (7.3) or a worse token (7.5).
#[test]
fn a_node_that_never_heart_beats_fails_the_holder_broadcast_cases() {
    only_these_fail(Fault::NeverHeartbeats, &["6.6", "7.1", "7.3", "7.5"]);
}

#[test]
fn a_node_that_ignores_where_is_token_fails_the_answer_cases() {
    only_these_fail(Fault::IgnoresWhereIsToken, &["7.2", "7.8"]);
}

/// 8.1 needs the token to reach the next member (which then dies) first.
#[test]
fn a_node_that_sends_the_token_to_the_wrong_node_fails_the_ring_order_cases() {
    only_these_fail(Fault::TokenToWrongNode, &["6.3", "6.4", "8.1"]);
}

#[test]
fn a_node_that_answers_nothing_on_tcp_fails_every_answer_case() {
    only_these_fail(Fault::AnswersNothingOnTcp, &["7.2", "7.3", "7.5", "7.8", "7.18"]);
}
