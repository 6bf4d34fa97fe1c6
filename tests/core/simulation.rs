//! PROTOCOL section 8, safety and liveness, checked by deterministic
//! simulation of the shipping protocol `Node` (see `sim/`).
//!
//! - **Faults** (`section_8_*`): each seed draws a fault schedule for 10 s
//!   of virtual time (delays and reordering, datagram loss and duplication,
//!   partitions that heal, crashes and restarts with or without the
//!   persisted expansion, powered-off hosts, hand-offs delivered although
//!   their sender saw them fail); then the faults stop. Within `BOUND` after
//!   that and until the end of the run: exactly one token; no digits lost
//!   (no expansion ever shrinks, the longest live one only with a crash,
//!   and the final token is at least as long as any live node's); every
//!   expansion is pi; progress resumes; and **no churn**: no token is
//!   generated and no node declares the token lost.
//! - **Healthy rings** (`a_healthy_ring_*`): no fault at all, but delays,
//!   UDP/TCP reordering (a heartbeat after the TAKE_TOKEN that followed it),
//!   holdings shorter and longer than the heartbeat, and rings that reach
//!   their target (equal tokens from hop to hop): exactly one token is ever
//!   generated and no node ever declares it lost.
//! - **Strangers** (`section_8_holds_with_strangers_on_the_lan`): the same
//!   fault schedules plus strangers that forge members' ids, make up ids by
//!   the hundred, hand over tables of silent hosts and flood valid searches
//!   and claims: the same properties hold once they stop, and no pi-ring
//!   node ever sends anything to a host that never spoke.
//! - **Equal duplicates**, **powered-off members**, **partitions** and
//!   **mixed rings** with the older implementation: see each test.
//!
//! `PI_RING_SIM_SEEDS=5000` runs more seeds (scripts/chaos.sh does);
//! `PI_RING_SIM_SEED=1234 cargo test --test core simulation::healthy -- --nocapture`
//! replays seed 1234 of the tests it selects, printing their traces.

use crate::sim::{Churn, Fault, Hostile, Kind, Rng, Sim};
use pi_ring::protocol::machine::Timing;
use pi_ring::protocol::StateName;
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
        report: ms(10),
    }
}

/// The recovery bound of section 8: waiter + looser_answer + generating.
fn recovery() -> Duration {
    let t = timing();
    t.waiter + t.looser_answer + t.generating
}

const BOUND_RECOVERIES: u32 = 3;

/// After a heal every node holds the token again within this: the two
/// tokens meet within a heartbeat or two, then about one round of 5
/// holdings of 20 ms (PROTOCOL section 6, "Back from a partition").
const HELD_AGAIN_WITHIN: Duration = Duration::from_millis(300);

/// After a heal a link at a time, a member the news of the meeting missed
/// is PINGed again within one `waiter` (its lost mark's background
/// recheck), then holds within a round of 5 holdings; one heartbeat of
/// slack for the PING and the hand-off in flight. Measured over 500 seeds:
/// median 130 ms, 99th percentile 290 ms, at most 300 ms.
fn held_again_after_a_staggered_heal() -> Duration {
    let t = timing();
    t.waiter + 5 * t.hold + t.heartbeat
}

fn bound() -> Duration {
    BOUND_RECOVERIES * recovery()
}

fn seeds(default: u64) -> u64 {
    std::env::var("PI_RING_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Draw the fault schedule of one seed.
fn schedule(sim: &mut Sim, rng: &mut Rng) {
    let mut t = ms(500);
    let mut down = [false; NODES];
    sim.schedule_fault(t, Fault::Loss([0.0, 0.01, 0.05, 0.2][rng.below(4) as usize]));
    sim.schedule_fault(t, Fault::Duplication([0.0, 0.02, 0.1][rng.below(3) as usize]));
    sim.schedule_fault(t, Fault::GhostFailures([0.0, 0.0, 0.05, 0.3][rng.below(4) as usize]));
    loop {
        t += rng.between(ms(100), ms(1500));
        if t >= FAULTS_UNTIL {
            break;
        }
        match rng.below(7) {
            0 | 1 => {
                let i = rng.below(NODES as u64) as usize;
                if !down[i] && down.iter().filter(|d| **d).count() < NODES - 1 {
                    let fault = if rng.chance(0.3) { Fault::PowerOff(i) } else { Fault::Crash(i) };
                    sim.schedule_fault(t, fault);
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
            5 => sim.schedule_fault(t, Fault::GhostFailures([0.0, 0.1, 0.5][rng.below(3) as usize])),
            _ => sim.schedule_fault(t, Fault::Loss([0.0, 0.05, 0.3][rng.below(3) as usize])),
        }
    }
    // The faults stop: network whole and reliable, every node up.
    for fault in [Fault::Heal, Fault::Loss(0.0), Fault::Duplication(0.0), Fault::GhostFailures(0.0)] {
        sim.schedule_fault(FAULTS_UNTIL, fault);
    }
    for i in 0..NODES {
        sim.schedule_fault(FAULTS_UNTIL, Fault::Restart { node: i, keep_data: rng.chance(0.7) });
    }
}

/// Run one seed of the fault schedule; `Err` says which property failed.
fn run(seed: u64) -> (Sim, Result<(), String>) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut sim = Sim::new(seed, &[Kind::PiRing; NODES], timing());
    schedule(&mut sim, &mut rng);
    let result = check_after_faults(&mut sim, FAULTS_UNTIL);
    (sim, result)
}

/// One token at every sample from `from` to `until`.
fn one_token(sim: &mut Sim, from: Duration, until: Duration) -> Result<usize, String> {
    let mut first_len = None;
    let mut t = from;
    while t <= until {
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
    Ok(first_len.unwrap_or(0))
}

fn check_after_faults(sim: &mut Sim, faults_until: Duration) -> Result<(), String> {
    let reference = pi_ring_harness::reference_wire();
    sim.run_until(faults_until + ms(1));
    if let Some(v) = sim.violations.first() {
        return Err(v.clone());
    }
    let longest_at_heal = sim.longest_live();
    sim.run_until(faults_until + bound());
    let churn_settled = sim.churn;
    let holdings_settled = sim.holdings.clone();
    let first_len = one_token(sim, faults_until + bound(), RUN_UNTIL)?;
    // Liveness for every member, not only the ring: each live node is
    // back in the rotation.
    let left_out: Vec<&str> = (0..sim.nodes.len())
        .filter(|&i| sim.alive(i) && sim.holdings[i] == holdings_settled[i])
        .map(|i| sim.nodes[i].id.as_str())
        .collect();
    if !left_out.is_empty() {
        return Err(format!(
            "{} never held the token from {:.3} s to {:.3} s",
            left_out.join(", "),
            (faults_until + bound()).as_secs_f64(),
            RUN_UNTIL.as_secs_f64()
        ));
    }
    if let Some(v) = sim.violations.first() {
        return Err(v.clone());
    }
    if sim.churn != churn_settled {
        return Err(format!("churn after the faults healed: {:?} then {:?}", churn_settled, sim.churn));
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
    if token_len <= first_len {
        return Err(format!("no progress after the faults stopped: {token_len} digits"));
    }
    for node in &sim.nodes {
        if let Some(m) = node.node() {
            if !reference.starts_with(m.expansion().as_str()) {
                return Err(format!("{} holds an expansion that is not pi", node.id));
            }
        }
    }
    Ok(())
}

/// Liveness after a heal: from `sim.now`, every live node takes the token
/// again within `within` (a member cut off by a partition is back in the
/// rotation, whatever its lost marks said during the split).
fn every_node_holds_again(sim: &mut Sim, within: Duration) -> Result<(), String> {
    let from = sim.now;
    let before = sim.holdings.clone();
    let mut t = from;
    while t < from + within {
        t += ms(10);
        sim.run_until(t);
    }
    let left_out: Vec<String> = (0..sim.nodes.len())
        .filter(|&i| sim.alive(i) && sim.holdings[i] == before[i])
        .map(|i| sim.nodes[i].id.clone())
        .collect();
    if left_out.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} did not hold the token within {within:?} after the heal at {:.3} s; states {:?}",
            left_out.join(", "),
            from.as_secs_f64(),
            sim.states()
        ))
    }
}

fn report(name: &str, seed: u64, sim: &Sim, error: &str) -> String {
    // PI_RING_SIM_TRACE=N shows the last N trace lines instead of 150.
    let lines = std::env::var("PI_RING_SIM_TRACE").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    format!(
        "{name}: seed {seed} failed: {error}\n--- last trace lines of {}:\n{}\n",
        sim.trace.len(),
        sim.trace_tail(lines)
    )
}

/// Run `check` over `seeds` seeds; fail with the first failure's report.
/// With `PI_RING_SIM_SEED=N`, run seed N alone and print its whole trace.
fn over_seeds(name: &str, seeds: u64, check: impl Fn(u64) -> (Sim, Result<(), String>)) {
    if let Some(seed) = std::env::var("PI_RING_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        let (sim, result) = check(seed);
        println!("{}", sim.trace.join("\n"));
        if let Err(e) = result {
            panic!("{}", report(name, seed, &sim, &e));
        }
        println!("{name}: seed {seed}: all properties hold");
        return;
    }
    let mut failures = Vec::new();
    for seed in 0..seeds {
        let (sim, result) = check(seed);
        if let Err(e) = result {
            failures.push((seed, report(name, seed, &sim, &e)));
        }
    }
    if let Some((_, first)) = failures.first() {
        let failed: Vec<u64> = failures.iter().map(|(s, _)| *s).collect();
        panic!("{} of {seeds} seeds failed: {failed:?}\n{first}", failures.len());
    }
}

#[test]
fn section_8_holds_and_churn_stops_over_many_seeded_fault_schedules() {
    over_seeds("faults", seeds(300), run);
}

/// Strangers act while the faults last, a few times a second.
fn schedule_strangers(sim: &mut Sim, rng: &mut Rng) {
    let mut t = ms(300);
    loop {
        t += rng.between(ms(100), ms(1000));
        if t >= FAULTS_UNTIL {
            break;
        }
        let hostile = match rng.below(5) {
            0 => Hostile::ForgedIds,
            1 => Hostile::ManyIds { count: 300, sources: 1 },
            2 => Hostile::ManyIds { count: 300, sources: 100 },
            3 => Hostile::StrangeTable { hosts: 300 },
            _ => Hostile::Flood { count: 400, sources: 40 },
        };
        sim.schedule_fault(t, Fault::Stranger(hostile));
    }
}

fn run_with_strangers(seed: u64) -> (Sim, Result<(), String>) {
    let mut rng = Rng::new(seed ^ 0x5747);
    let mut sim = Sim::new(seed, &[Kind::PiRing; NODES], timing());
    schedule(&mut sim, &mut rng);
    schedule_strangers(&mut sim, &mut rng);
    let mut result = check_after_faults(&mut sim, FAULTS_UNTIL);
    if result.is_ok() && sim.injected == 0 {
        result = Err("no stranger's message was delivered".into());
    }
    (sim, result)
}

#[test]
fn section_8_holds_with_strangers_on_the_lan() {
    over_seeds("strangers", seeds(100), run_with_strangers);
}

#[test]
fn the_simulation_is_deterministic() {
    let (a, _) = run(7);
    let (b, _) = run(7);
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 1000, "the run did something");
}

/// A fault-free ring of 2 to 6 nodes: holdings shorter or longer than the
/// heartbeat, UDP slower or faster than TCP, sometimes a small target.
fn healthy(seed: u64) -> (Sim, Result<(), String>) {
    let mut rng = Rng::new(seed ^ 0x4ea1);
    let n = 2 + rng.below(5) as usize;
    let hold = [0, 10, 20, 49, 50, 51, 120, 300][rng.below(8) as usize];
    let timing = Timing { hold: ms(hold), ..timing() };
    let mut sim = Sim::new(seed, &vec![Kind::PiRing; n], timing);
    sim.udp_delay = (Duration::from_micros(50), rng.between(ms(1), ms(8)));
    sim.tcp_delay = (Duration::from_micros(50), rng.between(ms(1), ms(8)));
    let target = rng.chance(0.3);
    if target {
        sim.max_len = 22 + 20 * rng.below(20) as usize;
    }
    let run_until = Duration::from_secs(12);
    let result = (|| {
        one_token(&mut sim, recovery() + Duration::from_millis(500), run_until)?;
        if sim.churn != (Churn { generated: 1, lost: 0 }) {
            return Err(format!("a healthy ring churned: {:?}", sim.churn));
        }
        if let Some(v) = sim.violations.first() {
            return Err(v.clone());
        }
        heartbeat_budget(&sim, recovery() + Duration::from_millis(500), run_until)?;
        monitor_hears_every_holding(&sim, recovery() + Duration::from_millis(500), run_until)?;
        let expected = if target { sim.max_len } else { 200 };
        if sim.longest_live() < expected {
            return Err(format!("no progress: {} characters", sim.longest_live()));
        }
        Ok(())
    })();
    (sim, result.map_err(|e| format!("{n} nodes, hold {hold} ms, target {target}: {e}")))
}

/// The ring port's steady load: about one TOKEN_IS_HERE per heartbeat
/// period for the whole ring, however fast the token moves (at most 2 per
/// period on average), and never a gap that a waiter could take for a lost
/// token (at most half the `waiter` timeout).
fn heartbeat_budget(sim: &Sim, from: Duration, until: Duration) -> Result<(), String> {
    let heartbeat = sim.timing.heartbeat;
    let times: Vec<Duration> = sim.announcements.iter().copied().filter(|t| *t >= from && *t < until).collect();
    let periods = (until - from).as_secs_f64() / heartbeat.as_secs_f64();
    let per_period = times.len() as f64 / periods;
    if per_period > 2.0 {
        return Err(format!(
            "{per_period:.2} TOKEN_IS_HERE broadcasts per heartbeat period: {:?}",
            &times[..times.len().min(12)]
        ));
    }
    let mut last = from;
    for t in times.iter().copied().chain([until]) {
        if t - last > sim.timing.waiter / 2 {
            return Err(format!("no TOKEN_IS_HERE for {:?} before {t:?}", t - last));
        }
        last = t;
    }
    Ok(())
}

/// What a monitor hears (PROTOCOL section 10, "Monitor reports are paced
/// too"): every holding is told within a second and a little, by a report
/// of the node with its holdings count; and the ring sends a bounded number
/// of reports however fast the token moves: at most one at once per
/// `report` period, besides one coalesced per node and second.
fn monitor_hears_every_holding(sim: &Sim, from: Duration, until: Duration) -> Result<(), String> {
    let within = Duration::from_millis(1050);
    for &(at, node, count) in sim.owner_entries.iter().filter(|(t, ..)| *t >= from && *t + within <= until) {
        let told =
            sim.reports.iter().any(|(t, i, r)| *i == node && *t >= at && *t <= at + within && r.holdings >= count);
        if !told {
            return Err(format!(
                "{}'s holding #{count} at {at:?} was not reported within {within:?}",
                sim.nodes[node].id
            ));
        }
    }
    let secs = (until - from).as_secs_f64();
    let n = sim.nodes.len() as f64;
    let sent = sim.reports.iter().filter(|(t, ..)| *t >= from && *t < until).count() as f64;
    let bound = secs / sim.timing.report.as_secs_f64() + 1.0 + n * (secs + 2.0);
    if sent > bound {
        return Err(format!("{sent} reports in {secs:.1} s, more than {bound:.0}"));
    }
    Ok(())
}

/// A fast ring of 12 with the default report period (100 ms): most
/// hand-offs are routine, and a node's own reports at once come about once
/// a round (1.2 s), so only the coalesced reports tell every holding within
/// a second.
#[test]
fn a_monitor_hears_every_holding_of_a_fast_ring_within_a_second() {
    over_seeds("monitor", seeds(5), |seed| {
        let timing = Timing { hold: Duration::ZERO, report: ms(100), ..timing() };
        let mut sim = Sim::new(seed, &[Kind::PiRing; 12], timing);
        let from = recovery() + Duration::from_millis(500);
        let until = Duration::from_secs(6);
        sim.run_until(until);
        let result = monitor_hears_every_holding(&sim, from, until);
        (sim, result)
    });
}

#[test]
fn a_healthy_ring_generates_one_token_and_never_loses_it() {
    over_seeds("healthy", seeds(300), healthy);
}

/// Members that have computed none of the digits they are handed take the
/// token at once and check them while they hold it, heart-beating: a check
/// that takes longer than the waiter timeout costs no recovery (PROTOCOL
/// section 4).
#[test]
fn holders_that_check_what_they_are_handed_keep_the_ring_alive() {
    over_seeds("cold checks", seeds(100), |seed| {
        let mut rng = Rng::new(seed ^ 0xc01d);
        let n = 2 + rng.below(4) as usize;
        let mut sim = Sim::new(seed, &vec![Kind::PiRing; n], timing());
        let check = rng.between(timing().waiter, 3 * timing().waiter);
        sim.cold_checks = Some(check);
        let run_until = Duration::from_secs(12);
        let result = (|| {
            one_token(&mut sim, recovery() + ms(500), run_until)?;
            if sim.churn != (Churn { generated: 1, lost: 0 }) {
                return Err(format!("the ring churned: {:?}", sim.churn));
            }
            if let Some(v) = sim.violations.first() {
                return Err(v.clone());
            }
            heartbeat_budget(&sim, recovery() + ms(500), run_until)?;
            // One holding per check: 20 digits each.
            let holdings = ((run_until - recovery()).as_secs_f64() / check.as_secs_f64()) as usize;
            if sim.longest_live() < 2 + 20 * holdings / 2 {
                return Err(format!("too little progress: {} characters", sim.longest_live()));
            }
            Ok(())
        })();
        (sim, result.map_err(|e| format!("{n} nodes, checks of {check:?}: {e}")))
    });
}

/// The holder dies while it checks the digits it was handed: the ring
/// recovers within the bound from the longest expansion a survivor has.
#[test]
fn a_holder_that_dies_while_checking_is_replaced() {
    over_seeds("cold crash", seeds(100), |seed| {
        let mut rng = Rng::new(seed ^ 0xdead);
        let mut sim = Sim::new(seed, &[Kind::PiRing; 4], timing());
        sim.cold_checks = Some(rng.between(ms(100), ms(600)));
        sim.run_until(ms(1500) + rng.between(ms(0), ms(500)));
        let holder = (0..4).find(|&i| sim.nodes[i].state() == Some(StateName::Owner));
        if let Some(holder) = holder {
            sim.schedule_fault(sim.now + ms(1), Fault::Crash(holder));
        }
        let faults_until = sim.now + ms(2);
        let result = check_after_faults(&mut sim, faults_until);
        (sim, result)
    });
}

/// Two subnets joined by a router that forwards no broadcast: 3 nodes in
/// each, every node given one seed (n1, in the first subnet). `--no-broadcast`
/// on one flat network is the same ring with no broadcast at all.
fn seeded(seed: u64, no_broadcast: bool) -> Sim {
    let mut sim = Sim::new(seed, &[Kind::PiRing; 6], timing());
    if no_broadcast {
        sim.no_broadcast = true;
    } else {
        sim.subnets = Some(vec![0, 0, 0, 1, 1, 1]);
    }
    sim.seeds = vec![sim.nodes[0].host];
    sim
}

fn forms_one_ring(sim: &mut Sim) -> Result<(), String> {
    let from = Duration::from_secs(4);
    one_token(sim, from, RUN_UNTIL)?;
    if let Some(v) = sim.violations.first() {
        return Err(v.clone());
    }
    if let Some(never) = sim.holdings.iter().position(|h| *h == 0) {
        return Err(format!("{} never held the token: {:?}", sim.nodes[never].id, sim.holdings));
    }
    let reference = pi_ring_harness::reference_wire();
    for node in sim.nodes.iter().filter_map(|n| n.node()) {
        if !reference.starts_with(node.expansion().as_str()) {
            return Err("an expansion that is not pi".into());
        }
    }
    if sim.longest_live() < 200 {
        return Err(format!("no progress: {} characters", sim.longest_live()));
    }
    Ok(())
}

#[test]
fn seed_peers_join_two_subnets_into_one_ring() {
    over_seeds("two subnets", seeds(100), |seed| {
        let mut sim = seeded(seed, false);
        let result = forms_one_ring(&mut sim);
        (sim, result)
    });
}

#[test]
fn a_ring_without_broadcast_forms_from_seeds_alone() {
    over_seeds("no broadcast", seeds(100), |seed| {
        let mut sim = seeded(seed, true);
        let result = forms_one_ring(&mut sim).and_then(|()| match sim.broadcasts {
            0 => Ok(()),
            n => Err(format!("{n} broadcasts sent with --no-broadcast")),
        });
        (sim, result)
    });
}

/// The holder dies in either subnet, or the router is cut for 5 s (25
/// waiter periods): the ring recovers within the bound from the longest
/// expansion, and after the heal exactly one token survives.
#[test]
fn two_subnets_recover_from_a_killed_holder_and_a_cut_router() {
    over_seeds("subnet faults", seeds(100), |seed| {
        let mut rng = Rng::new(seed ^ 0x50b);
        let mut sim = seeded(seed, false);
        sim.run_until(ms(4000));
        let result = if rng.chance(0.5) {
            match (0..6).find(|&i| sim.nodes[i].state() == Some(StateName::Owner)) {
                Some(holder) => {
                    sim.schedule_fault(ms(4001), Fault::Crash(holder));
                    check_after_faults(&mut sim, ms(4002))
                }
                None => Err(format!("no holder at 4 s: {:?}", sim.states())),
            }
        } else {
            sim.schedule_fault(ms(4001), Fault::Partition(vec![true, true, true, false, false, false]));
            sim.schedule_fault(ms(9000), Fault::Heal);
            check_after_faults(&mut sim, ms(9000))
        };
        (sim, result)
    });
}

#[test]
fn equal_duplicates_from_ghost_failures_end_with_one_holder() {
    over_seeds("ghosts", seeds(100), |seed| {
        let mut sim = Sim::new(seed, &[Kind::PiRing; 4], timing());
        sim.schedule_fault(ms(1000), Fault::GhostFailures(0.4));
        sim.schedule_fault(ms(6000), Fault::GhostFailures(0.0));
        let result = check_after_faults(&mut sim, ms(6000));
        (sim, result)
    });
}

/// Two adjacent members powered off (connects time out): the survivors
/// keep growing the expansion, a round costs at most one connect timeout
/// after the first, and nobody declares the token lost.
#[test]
fn powered_off_members_cost_a_round_at_most_one_failed_attempt() {
    over_seeds("powered off", seeds(50), |seed| {
        let mut rng = Rng::new(seed ^ 0x0ff);
        let mut sim = Sim::new(seed, &[Kind::PiRing; 5], timing());
        let first = rng.below(5) as usize;
        let second = (first + 1) % 5;
        sim.schedule_fault(ms(2000), Fault::PowerOff(first));
        sim.schedule_fault(ms(2000), Fault::PowerOff(second));
        let result = (|| {
            // One of them may have held the token: allow a recovery and the
            // first round, which discovers them; measure from the next.
            let from = ms(2000) + recovery() + 2 * sim.connect_timeout + ms(300);
            sim.run_until(from);
            let churn = sim.churn;
            let before = sim.longest_live();
            sim.measure_from = from;
            sim.run_until(ms(12_000));
            let t = timing();
            let allowed = t.hold + t.waiter / 2 + ms(20);
            let (longest, at) = sim.longest_holding_now();
            if longest > allowed {
                return Err(format!("a holding lasted {longest:?} ({at}), over {allowed:?}"));
            }
            if sim.churn != churn {
                return Err(format!("the token was declared lost: {:?} then {:?}", churn, sim.churn));
            }
            let grown = sim.longest_live() - before;
            // Three survivors, each holding `hold` plus one connect timeout
            // a round: over 20 characters every 0.4 s.
            if grown < 400 {
                return Err(format!("the survivors added only {grown} characters in 8.5 s"));
            }
            Ok(())
        })();
        (sim, result)
    });
}

/// A random 2|3 split of five nodes: `true` for the two.
fn two_of_five(rng: &mut Rng) -> Vec<bool> {
    let mut side = vec![false; 5];
    let a = rng.below(5) as usize;
    side[a] = true;
    side[(a + 1 + rng.below(4) as usize) % 5] = true;
    side
}

/// Both sides of a 2|3 split keep growing their expansion while it lasts;
/// after the heal, every node holds the token again within
/// [`HELD_AGAIN_WITHIN`], section 8 holds and the churn stops.
#[test]
fn both_sides_of_a_partition_keep_growing_and_merge_after_the_heal() {
    over_seeds("partition", seeds(50), |seed| {
        let mut rng = Rng::new(seed ^ 0x5b11);
        let mut sim = Sim::new(seed, &[Kind::PiRing; 5], timing());
        let side = two_of_five(&mut rng);
        sim.schedule_fault(ms(2000), Fault::Partition(side.clone()));
        sim.schedule_fault(ms(8000), Fault::Heal);
        let result = (|| {
            sim.run_until(ms(3500));
            let longest_of = |sim: &Sim, s: bool| {
                (0..5).filter(|i| side[*i] == s).map(|i| sim.nodes[i].progress()).max().unwrap_or(0)
            };
            let (a0, b0) = (longest_of(&sim, true), longest_of(&sim, false));
            sim.run_until(ms(7900));
            let (a1, b1) = (longest_of(&sim, true), longest_of(&sim, false));
            if a1 < a0 + 500 || b1 < b0 + 500 {
                return Err(format!("a side stalled: {a0} -> {a1} and {b0} -> {b1}"));
            }
            sim.run_until(ms(8000));
            every_node_holds_again(&mut sim, HELD_AGAIN_WITHIN)?;
            check_after_faults(&mut sim, ms(8000))
        })();
        (sim, result)
    });
}

/// A network heals a link at a time, not at once (switch ports come back
/// one by one; the fault tests move bridge ports one `ip` command at a
/// time): after a 2|3 split, the cut-off members rejoin one after another,
/// tens of milliseconds apart. The tokens may meet before the last member
/// is back, so whatever the nodes say once when they meet misses it; still
/// every node holds the token again within [`held_again_after_a_staggered_heal`]
/// of the last link's return (PROTOCOL section 10, "Back from a partition").
#[test]
fn a_partition_that_heals_one_link_at_a_time_brings_every_node_back() {
    over_seeds("staggered heal", seeds(100), |seed| {
        let mut rng = Rng::new(seed ^ 0x57a6);
        let mut sim = Sim::new(seed, &[Kind::PiRing; 5], timing());
        let mut side = two_of_five(&mut rng);
        sim.schedule_fault(ms(2000), Fault::Partition(side.clone()));
        // The cut-off members come back one at a time, in a random order.
        let mut t = ms(8000);
        let mut away: Vec<usize> = (0..5).filter(|i| !side[*i]).collect();
        while away.len() > 1 {
            let back = away.remove(rng.below(away.len() as u64) as usize);
            side[back] = true;
            sim.schedule_fault(t, Fault::Partition(side.clone()));
            t += rng.between(ms(10), ms(150));
        }
        sim.schedule_fault(t, Fault::Heal);
        let healed = t;
        let result = (|| {
            sim.run_until(healed);
            every_node_holds_again(&mut sim, held_again_after_a_staggered_heal())?;
            check_after_faults(&mut sim, healed)
        })();
        (sim, result)
    });
}

/// Between pi-ring nodes a hand-off carries what the receiver lacks (PROTOCOL
/// section 10, "Delta hand-offs"): about one round of digits, however long
/// the expansion; after a crash and a restart without data, the restarted
/// node gets going at once, and every expansion stays pi.
#[test]
fn hand_offs_between_pi_ring_nodes_carry_about_a_round_of_digits_however_long_the_expansion() {
    over_seeds("deltas", seeds(50), |seed| {
        let mut rng = Rng::new(seed ^ 0xde17a);
        let mut sim = Sim::new(seed, &[Kind::PiRing; 5], timing());
        let victim = rng.below(5) as usize;
        sim.schedule_fault(ms(3000), Fault::Crash(victim));
        sim.schedule_fault(ms(3500), Fault::Restart { node: victim, keep_data: rng.chance(0.5) });
        let result = (|| {
            sim.run_until(ms(1000));
            let (bytes, hand_offs) = (sim.take_token_bytes, sim.take_tokens);
            sim.run_until(ms(2900));
            let per_hand_off = (sim.take_token_bytes - bytes) / (sim.take_tokens - hand_offs).max(1);
            let longest = sim.longest_live();
            // A round of 5 holdings adds 100 characters.
            if per_hand_off > 200 || longest < 2_000 {
                return Err(format!("{per_hand_off} characters per hand-off with {longest} in the expansion"));
            }
            sim.run_until(ms(4000));
            every_node_holds_again(&mut sim, HELD_AGAIN_WITHIN)?;
            check_after_faults(&mut sim, ms(3500))
        })();
        (sim, result)
    });
}

/// Every layout of pi-ring and older-implementation nodes in ring order,
/// for rings of 3 and 4: one token, and no churn once the ring runs; the
/// holder crashes and restarts, and the recovery makes one token again.
#[test]
fn mixed_rings_with_the_older_implementation_keep_one_token_without_churn() {
    let mut layouts: Vec<Vec<Kind>> = Vec::new();
    for n in [3usize, 4] {
        for mask in 1..(1u32 << n) - 1 {
            layouts.push((0..n).map(|i| if mask >> i & 1 == 1 { Kind::Legacy } else { Kind::PiRing }).collect());
        }
    }
    let per_layout = seeds(4000).div_ceil(layouts.len() as u64).max(3);
    let crash_at = Duration::from_secs(8);
    let mut two_tokens = 0;
    for layout in &layouts {
        let older = layout.iter().filter(|k| **k == Kind::Legacy).count();
        over_seeds(&format!("mixed {layout:?}"), per_layout, |seed| {
            let mut sim = Sim::new(seed, layout, timing());
            let result = (|| {
                // The first token; then it must live on without churn.
                let settle = recovery() + ms(500);
                sim.run_until(settle);
                let churn = sim.churn;
                one_token(&mut sim, settle, crash_at)?;
                if sim.churn != churn {
                    return Err(format!("churn: {churn:?} then {:?}", sim.churn));
                }
                // The holder crashes: one recovery, one new token.
                let holder = sim.nodes.iter().position(|n| n.holds_token()).unwrap_or(0);
                sim.schedule_fault(crash_at, Fault::Crash(holder));
                sim.schedule_fault(crash_at + Duration::from_secs(3), Fault::Restart { node: holder, keep_data: true });
                sim.run_until(crash_at);
                let before = sim.churn.generated;
                one_token(&mut sim, crash_at + bound(), Duration::from_secs(20))?;
                let made = sim.churn.generated - before;
                if made > 1 && older < 2 {
                    return Err(format!("the recovery from {}'s crash made {made} tokens", sim.nodes[holder].id));
                }
                if let Some(v) = sim.violations.first() {
                    return Err(v.clone());
                }
                Ok(())
            })();
            (sim, result)
        });
        for seed in 0..per_layout {
            let mut sim = Sim::new(seed, layout, timing());
            sim.run_until(recovery() + ms(500));
            if sim.churn.generated > 1 {
                two_tokens += 1;
                assert!(older >= 2, "{layout:?} seed {seed}: a pi-ring node made a second token at a cold start");
            }
        }
    }
    println!(
        "mixed rings: {} layouts x {per_layout} cold starts; {two_tokens} made two tokens (two older nodes can do that alone)",
        layouts.len()
    );
}

/// What unicast costs: with `--no-broadcast` every broadcast becomes one
/// datagram per other member, so the steady ring sends about
/// 2 x (members - 1) datagrams per heartbeat period (the heartbeat budget
/// times the fan-out), and two subnets of 3 send copies only across the
/// router. Prints the figures for 6 and 50 members at the default timeouts.
#[test]
fn unicast_stays_within_the_heartbeat_budget_times_the_fan_out() {
    let timing = Timing::default();
    for (members, subnets, no_broadcast) in [(6, true, false), (6, false, true), (50, false, true)] {
        let mut sim = Sim::new(7, &vec![Kind::PiRing; members], timing.clone());
        if subnets {
            sim.subnets = Some((0..members).map(|i| u8::from(i >= members / 2)).collect());
        }
        sim.no_broadcast = no_broadcast;
        sim.seeds = vec![sim.nodes[0].host];
        let (from, until) = (Duration::from_secs(20), Duration::from_secs(50));
        sim.run_until(from);
        let before = sim.unicasts;
        sim.run_until(until);
        let periods = (until - from).as_secs_f64() / timing.heartbeat.as_secs_f64();
        let per_second = (sim.unicasts - before) as f64 / (until - from).as_secs_f64();
        let fan_out = if subnets { members / 2 } else { members - 1 };
        eprintln!(
            "FIGURES unicast members={members} subnets={subnets} no_broadcast={no_broadcast}: \
             {per_second:.1} datagrams/s ({:.2} per heartbeat period and receiver)",
            (sim.unicasts - before) as f64 / periods / fan_out as f64
        );
        assert!(
            per_second <= 2.5 * fan_out as f64 / timing.heartbeat.as_secs_f64(),
            "{members} members: {per_second:.1} unicast datagrams per second"
        );
        assert!(per_second > 0.0);
    }
}
