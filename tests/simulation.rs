//! PROTOCOL section 8 checked by deterministic simulation (see `sim/`).
//!
//! Each seed draws a fault schedule for 10 s of virtual time (message delay
//! and reordering, datagram loss and duplication, partitions that heal,
//! crashes and restarts with or without the persisted expansion); then the
//! faults stop, every node is up and the network is whole. Within
//! `BOUND = 3 * (waiter + looser_answer + generating)` after that, and until
//! the end of the run:
//!
//! - exactly one token exists (one holder, or one TAKE_TOKEN in flight);
//! - no digits are lost: no node's expansion ever shrinks, the longest
//!   expansion among live nodes shrinks only when its holder crashes (at
//!   any time, faults or not), and at the end the token's expansion is at
//!   least as long as any live node's and as the longest any live node held
//!   when the faults stopped;
//! - every expansion is pi (checked against shared/pi/pi-1m.txt);
//! - progress resumes: the expansion grows after the faults stop.
//!
//! `cargo test --test simulation` runs 300 seeds; `PI_RING_SIM_SEEDS=5000`
//! runs more; `PI_RING_SIM_SEED=1234` replays one seed and prints its trace.

mod common;
mod sim;

use pi_ring::protocol::machine::Timing;
use sim::{Fault, Rng, Sim};
use std::time::Duration;

const NODES: usize = 5;
const FAULTS_UNTIL: Duration = Duration::from_secs(10);
const RUN_UNTIL: Duration = Duration::from_secs(16);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timing() -> Timing {
    Timing {
        heartbeat: ms(50),
        waiter: ms(200),
        looser_ask: ms(50),
        looser_answer: ms(200),
        generating: ms(200),
        hold: ms(20),
    }
}

fn bound() -> Duration {
    let t = timing();
    3 * (t.waiter + t.looser_answer + t.generating)
}

/// Draw the fault schedule of one seed.
fn schedule(sim: &mut Sim, rng: &mut Rng) {
    let mut t = ms(500);
    let mut down = [false; NODES];
    sim.schedule_fault(t, Fault::Loss([0.0, 0.01, 0.05, 0.2][rng.below(4) as usize]));
    sim.schedule_fault(t, Fault::Duplication([0.0, 0.02, 0.1][rng.below(3) as usize]));
    loop {
        t += rng.between(ms(100), ms(1500));
        if t >= FAULTS_UNTIL {
            break;
        }
        match rng.below(6) {
            0 | 1 => {
                let i = rng.below(NODES as u64) as usize;
                if !down[i] && down.iter().filter(|d| **d).count() < NODES - 1 {
                    sim.schedule_fault(t, Fault::Crash(i));
                    down[i] = true;
                }
            }
            2 | 3 => {
                if let Some(i) = (0..NODES).find(|i| down[*i]) {
                    sim.schedule_fault(t, Fault::Restart { node: i, keep_data: rng.chance(0.7) });
                    down[i] = false;
                }
            }
            4 => {
                let side: Vec<bool> = (0..NODES).map(|_| rng.chance(0.5)).collect();
                sim.schedule_fault(t, Fault::Partition(side));
                let heal = t + rng.between(ms(100), ms(3000));
                sim.schedule_fault(heal.min(FAULTS_UNTIL), Fault::Heal);
            }
            _ => sim.schedule_fault(t, Fault::Loss([0.0, 0.05, 0.3][rng.below(3) as usize])),
        }
    }
    // The faults stop: network whole and reliable, every node up.
    sim.schedule_fault(FAULTS_UNTIL, Fault::Heal);
    sim.schedule_fault(FAULTS_UNTIL, Fault::Loss(0.0));
    sim.schedule_fault(FAULTS_UNTIL, Fault::Duplication(0.0));
    for i in 0..NODES {
        sim.schedule_fault(FAULTS_UNTIL, Fault::Restart { node: i, keep_data: rng.chance(0.7) });
    }
}

/// Run one seed; `Err` says which property failed.
fn run(seed: u64) -> (Sim, Result<(), String>) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut sim = Sim::new(seed, NODES, timing());
    schedule(&mut sim, &mut rng);
    let result = check(&mut sim);
    (sim, result)
}

fn check(sim: &mut Sim) -> Result<(), String> {
    let reference = common::reference_wire();
    sim.run_until(FAULTS_UNTIL + ms(1));
    if let Some(v) = sim.violations.first() {
        return Err(v.clone());
    }
    let longest_at_heal = sim.longest_live();
    sim.run_until(FAULTS_UNTIL + bound());
    let mut first_len = None;
    let mut t = FAULTS_UNTIL + bound();
    while t <= RUN_UNTIL {
        sim.run_until(t);
        let tokens = sim.tokens();
        if tokens.len() != 1 {
            return Err(format!(
                "at {:.3} s: {} tokens {tokens:?}; states {:?}",
                t.as_secs_f64(),
                tokens.len(),
                sim.states()
            ));
        }
        first_len.get_or_insert(tokens[0].1);
        t += ms(37);
    }
    if let Some(v) = sim.violations.first() {
        return Err(v.clone());
    }
    let (holder, token_len) = sim.tokens()[0].clone();
    if token_len < longest_at_heal {
        return Err(format!(
            "digits lost: token at {holder} has {token_len} < {longest_at_heal} held when the faults stopped"
        ));
    }
    if token_len < sim.longest_live() {
        return Err(format!(
            "digits lost: token at {holder} has {token_len} < {} held by a live node; {:?}",
            sim.longest_live(),
            sim.states()
        ));
    }
    if token_len <= first_len.unwrap_or(0) {
        return Err(format!("no progress after the faults stopped: {token_len} digits"));
    }
    for node in &sim.nodes {
        if let Some(m) = &node.machine {
            let e = m.expansion().as_str();
            if !reference.starts_with(e) {
                return Err(format!("{} holds an expansion that is not pi", node.id));
            }
        }
    }
    Ok(())
}

fn report(seed: u64, sim: &Sim, error: &str) -> String {
    let tail: Vec<&String> = sim.trace.iter().rev().take(120).collect();
    let tail: Vec<&str> = tail.into_iter().rev().map(String::as_str).collect();
    format!(
        "seed {seed} failed: {error}\n--- last {} of {} trace lines:\n{}\n--- replay: PI_RING_SIM_SEED={seed} cargo test --test simulation replay -- --nocapture",
        tail.len(),
        sim.trace.len(),
        tail.join("\n")
    )
}

#[test]
fn section_8_holds_over_many_seeded_fault_schedules() {
    let seeds: u64 = std::env::var("PI_RING_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut failures = Vec::new();
    for seed in 0..seeds {
        let (sim, result) = run(seed);
        if let Err(e) = result {
            failures.push((seed, report(seed, &sim, &e)));
        }
    }
    if let Some((_, first)) = failures.first() {
        let failed: Vec<u64> = failures.iter().map(|(s, _)| *s).collect();
        panic!("{} of {seeds} seeds failed: {failed:?}\n{first}", failures.len());
    }
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("PI_RING_SIM_SEED").ok().and_then(|s| s.parse().ok()) else { return };
    let (sim, result) = run(seed);
    for line in &sim.trace {
        println!("{line}");
    }
    if let Err(e) = result {
        panic!("{}", report(seed, &sim, &e));
    }
    println!("seed {seed}: all properties hold");
}

#[test]
fn the_simulation_is_deterministic() {
    let (a, _) = run(7);
    let (b, _) = run(7);
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 1000, "the run did something");
}
