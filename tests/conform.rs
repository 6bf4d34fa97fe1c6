//! `pi-ring-node` keeps the protocol: every case of `pi-ring-conform`,
//! the optional ones and pi-ring's own additions included, passes against
//! it, spawned by the tool as its README shows. A test binary of its own,
//! so that no other test's nodes share the two cores while the cases time
//! the node.

use pi_ring_conform::report::case_lines;
use pi_ring_conform::subject::{Spawned, Timing};
use pi_ring_conform::{run, select, Plan};
use std::time::Duration;

#[test]
fn pi_ring_node_passes_every_conformance_case() {
    let template = format!(
        "{} --id {{id}} --bind {{host}} --broadcast {{broadcast}} --udp-port {{udp}} --tcp-port {{tcp}} \
         --monitor-port {{monitor}} --heartbeat-ms {{heartbeat_ms}} --waiter-ms {{waiter_ms}} \
         --looser-ask-ms {{looser_ask_ms}} --looser-answer-ms {{looser_answer_ms}} --generating-ms {{generating_ms}}",
        env!("CARGO_BIN_EXE_pi-ring-node")
    );
    let ms = Duration::from_millis;
    let timing = Timing {
        heartbeat: ms(100),
        waiter: ms(400),
        looser_ask: ms(100),
        looser_answer: ms(400),
        generating: ms(400),
        slack: ms(150),
        start: ms(5000),
    };
    let plan = Plan { timing, ..Plan::default() };
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conform");
    let cases = select(&[], true).expect("every case");
    let report = run(&mut Spawned::new(&template, logs), &cases, &plan, |result| print!("{}", case_lines(result)));
    println!("{}", report.last_line());
    assert_eq!(report.failed_ids(), Vec::<&str>::new(), "\n{}", report.text());
    assert_eq!((report.passed(), report.skipped()), (cases.len(), 0));
}
