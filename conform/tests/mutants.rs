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
    Plan { timing: Timing { start: Duration::from_secs(2), ..Timing::quick() }, ..Plan::default() }
}

fn run_against(fault: Fault) -> Report {
    run_against_cases(fault, &[])
}

/// Run `names` (none: every case, strict ones included) against `fault`.
fn run_against_cases(fault: Fault, names: &[String]) -> Report {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cases = select(names, true).expect("known cases");
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

/// What fails against each of the mutants the issue names, in a run of
/// every case.
const NINETEEN_DIGITS: &[&str] = &["4.1", "4.2", "4.3", "4.4"];
const NEVER_HEARTBEATS: &[&str] = &["6.6", "7.1", "7.3", "7.5"];
const IGNORES_WHERE_IS_TOKEN: &[&str] = &["7.2", "7.8"];
const TOKEN_TO_WRONG_NODE: &[&str] = &["6.3", "6.4", "8.1"];
const ANSWERS_NOTHING_ON_TCP: &[&str] = &["7.2", "7.3", "7.5", "7.8", "7.18"];

#[test]
fn the_core_as_it_ships_passes_every_case() {
    only_these_fail(Fault::None, &[]);
}

#[test]
fn a_node_that_adds_19_digits_fails_the_expansion_cases() {
    only_these_fail(Fault::NineteenDigits, NINETEEN_DIGITS);
}

/// Its TOKEN_IS_HERE broadcasts while holding are missing: the heartbeat
/// (7.1, and 6.6, which watches the heartbeat to see the token kept) and
/// the broadcasts that answer a claim (7.3) or a worse token (7.5).
#[test]
fn a_node_that_never_heart_beats_fails_the_holder_broadcast_cases() {
    only_these_fail(Fault::NeverHeartbeats, NEVER_HEARTBEATS);
}

#[test]
fn a_node_that_ignores_where_is_token_fails_the_answer_cases() {
    only_these_fail(Fault::IgnoresWhereIsToken, IGNORES_WHERE_IS_TOKEN);
}

/// 8.1 needs the token to reach the next member (which then dies) first.
#[test]
fn a_node_that_sends_the_token_to_the_wrong_node_fails_the_ring_order_cases() {
    only_these_fail(Fault::TokenToWrongNode, TOKEN_TO_WRONG_NODE);
}

#[test]
fn a_node_that_answers_nothing_on_tcp_fails_every_answer_case() {
    only_these_fail(Fault::AnswersNothingOnTcp, ANSWERS_NOTHING_ON_TCP);
}

/// Every case can fail: for each, a node that breaks its rule, and the
/// cases that must then fail (run on their own; the headline mutants above
/// show that the others pass).
const BROKEN_RULES: &[(Fault, &[&str])] = &[
    (Fault::WrongSerialCodeOnAnswers, &["3.1"]),
    (Fault::MyStateOnRingPort, &["3.2"]),
    (Fault::RejectsUnknownFields, &["3.3", "10.1"]),
    (Fault::BroadcastsFromLoopback, &["5.1"]),
    (Fault::CrashesOnGarbage, &["5.2"]),
    (Fault::OneTcpClientAtATime, &["5.3"]),
    (Fault::NoPingToNewcomers, &["6.1"]),
    (Fault::TableOfTwo, &["6.2"]),
    (Fault::CountsRefusedHandOffAsSent, &["6.5"]),
    (Fault::NeverYieldsToBetterToken, &["7.4"]),
    (Fault::YieldsToEqualTokens, &["7.21"]),
    (Fault::WaiterIgnoresHeartbeats, &["7.6", "7.7", "7.13"]),
    (Fault::WaiterGivesUpEarly, &["7.7"]),
    (Fault::NoStartUpPings, &["7.9"]),
    (Fault::AsksOnce, &["7.10"]),
    (Fault::ClaimsLate, &["7.11"]),
    (Fault::IgnoresTokenWasHere, &["7.12"]),
    (Fault::ClaimsAgainstBetterClaims, &["7.14", "10.4"]),
    (Fault::IgnoresWorseClaims, &["7.15"]),
    (Fault::GeneratesLate, &["7.16"]),
    (Fault::GeneratingIgnoresBetterClaims, &["7.17"]),
    (Fault::GeneratingIgnoresTokens, &["7.19"]),
    (Fault::NoMyState, &["7.20", "10.3"]),
    (Fault::WholeHandOffs, &["10.1"]),
    (Fault::FollowsTables, &["10.2"]),
];

#[test]
fn every_case_fails_against_a_node_that_breaks_its_rule() {
    let mut wrong = Vec::new();
    for &(fault, cases) in BROKEN_RULES {
        let names: Vec<String> = cases.iter().map(|c| c.to_string()).collect();
        let report = run_against_cases(fault, &names);
        if report.failed_ids() != cases {
            wrong.push(format!(
                "{fault:?}: expected {cases:?} to fail, got {:?}\n{}",
                report.failed_ids(),
                report.text()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let covered: std::collections::BTreeSet<&str> = BROKEN_RULES.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    let headline =
        [NINETEEN_DIGITS, NEVER_HEARTBEATS, IGNORES_WHERE_IS_TOKEN, TOKEN_TO_WRONG_NODE, ANSWERS_NOTHING_ON_TCP]
            .concat();
    let never = select(&[], true)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .filter(|id| !covered.contains(id) && !headline.contains(id));
    let never: Vec<&str> = never.collect();
    assert!(never.is_empty(), "cases no mutant makes fail: {never:?}");
}
