//! `pi-ring-conform`: tests an implementation of the pi-ring protocol
//! (`docs/PROTOCOL.md`) from outside, over real sockets, rule by rule, as
//! h2spec does for HTTP/2.
//!
//! The tool plays every other member of the node's ring: scripted peers,
//! each on a loopback address of its own, speaking UDP and TCP as the
//! protocol says and listening on the monitoring port. Each case starts the
//! node under test afresh (`--spawn`), drives it through one rule and times
//! it against the node's own timeouts.
//!
//! Layout:
//! - [`wire`]: the messages of section 3, parsed strictly and built;
//! - [`lab`]: the scripted peers and the ears that record what the node says;
//! - [`subject`]: the node under test, spawned per case or already running;
//! - [`cases`]: the cases, one module per PROTOCOL section;
//! - [`report`]: the tree, JSON and JUnit reports;
//! - [`netns`]: `--netns`, a network of the tool's own (broadcasts to
//!   `255.255.255.255` heard, nothing sent beyond it);
//! - here, [`select`] and [`run`]: choosing cases and running them.

pub mod cases;
pub mod lab;
pub mod netns;
pub mod report;
pub mod subject;
pub mod wire;

use cases::{fail, Case, Ctx, Level};
use lab::{address_block, Lab, Ports};
use report::{CaseResult, Outcome, Report};
use std::net::Ipv4Addr;
use std::time::Instant;
use subject::{Slot, Subject, Timing};

/// How to run: the node's timeouts and where its ring lives.
#[derive(Clone, Debug)]
pub struct Plan {
    pub timing: Timing,
    /// Broadcast address of the ring (loopback by default).
    pub broadcast: Ipv4Addr,
    /// `--target`: the running node's address and its ring's ports;
    /// otherwise every case gets a new address and free ports.
    pub target: Option<(Ipv4Addr, Ports)>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan { timing: Timing::default(), broadcast: Ipv4Addr::new(127, 255, 255, 255), target: None }
    }
}

/// The cases `filters` name (section numbers, case ids or slugs; none: all),
/// required ones only unless `strict`. A case named by its id or slug runs
/// whatever its level.
pub fn select(filters: &[String], strict: bool) -> Result<Vec<&'static Case>, String> {
    let all = cases::all();
    for f in filters {
        if !all.iter().any(|c| c.section() == f || c.id == f || c.slug == f) {
            return Err(format!("no section or case {f:?} (--list shows them)"));
        }
    }
    Ok(all
        .into_iter()
        .filter(|c| {
            let named = filters.iter().any(|f| c.id == f || c.slug == f);
            let in_section = filters.is_empty() || filters.iter().any(|f| c.section() == f);
            named || in_section && (strict || c.level == Level::Required)
        })
        .collect())
}

/// Run `cases` against `subject`, calling `each` as each case ends.
pub fn run(
    subject: &mut dyn Subject,
    cases: &[&'static Case],
    plan: &Plan,
    mut each: impl FnMut(&CaseResult),
) -> Report {
    let began = Instant::now();
    let mut results = Vec::new();
    let id = match plan.target {
        Some((host, ports)) => learn_id(host, ports, plan),
        None => Ok(cases::SUBJECT_ID.to_owned()),
    };
    for &case in cases {
        let result = match &id {
            Err(why) => CaseResult {
                case,
                outcome: Outcome::Failed(fail("a running node", why.clone())),
                took: Default::default(),
                node_log: None,
            },
            Ok(id) => run_case(subject, case, plan, id),
        };
        each(&result);
        results.push(result);
    }
    Report { subject: subject.describe(), timing: plan.timing, results, took: began.elapsed() }
}

fn run_case(subject: &mut dyn Subject, case: &'static Case, plan: &Plan, id: &str) -> CaseResult {
    let began = Instant::now();
    let done = |outcome, node_log| CaseResult { case, outcome, took: began.elapsed(), node_log };
    if case.fresh && !subject.fresh() {
        return done(Outcome::Skipped("needs a node of its own (--spawn)".into()), None);
    }
    let block = address_block();
    let (host, ports) = match plan.target {
        Some(target) => target,
        None => match Ports::free() {
            Ok(ports) => (Ipv4Addr::new(block[0], block[1], block[2], 2), ports),
            Err(e) => return done(Outcome::Failed(fail("free ports for the case", e.to_string())), None),
        },
    };
    let lab = match Lab::new(ports, plan.broadcast, block) {
        Ok(lab) => lab,
        Err(e) => return done(Outcome::Failed(fail("the tool's sockets", e.to_string())), None),
    };
    let slot = Slot { id: id.to_owned(), host, broadcast: plan.broadcast, ports, timing: plan.timing };
    let mut ctx = Ctx::new(slot, lab, subject);
    let checked = (case.run)(&mut ctx).and_then(|()| ctx.alive());
    let node_log = ctx.node_log();
    let outcome = match checked {
        Ok(()) => Outcome::Passed,
        Err(failure) => Outcome::Failed(failure),
    };
    let keep_log = matches!(outcome, Outcome::Failed(_));
    drop(ctx);
    if !keep_log {
        if let Some(log) = &node_log {
            let _ = std::fs::remove_file(log);
        }
    }
    done(outcome, node_log.filter(|_| keep_log))
}

/// The id of the node running at `host`: the author of its first datagram.
fn learn_id(host: Ipv4Addr, ports: Ports, plan: &Plan) -> Result<String, String> {
    let lab = Lab::new(ports, plan.broadcast, address_block()).map_err(|e| format!("cannot listen: {e}"))?;
    let within = plan.timing.waiter + plan.timing.looser_answer + plan.timing.slack;
    lab.log
        .wait_for(0, Instant::now() + within, |h| h.from == host && h.wire().is_some())
        .and_then(|h| h.wire().map(|w| w.author.clone()))
        .ok_or_else(|| format!("heard nothing from {host} on UDP port {} in {} ms", ports.udp, within.as_millis()))
}
