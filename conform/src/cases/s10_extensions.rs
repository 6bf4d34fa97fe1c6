//! PROTOCOL section 10: what pi-ring adds where the protocol leaves room.
//! Other implementations need not do any of it; `--strict` checks it.

use super::{fail, Case, Checked, Ctx, Level};
use crate::lab::Channel;
use crate::wire::{self, Kind, Token};
use serde_json::json;
use std::time::Instant;

pub const CASES: &[Case] = &[
    Case {
        id: "10.1",
        slug: "delta-hand-off",
        rule: "a member that says `have` is handed only what it lacks (`data_from`)",
        level: Level::Extension,
        fresh: true,
        run: delta_hand_off,
    },
    Case {
        id: "10.2",
        slug: "strangers-table-not-followed",
        rule: "a stranger's TAKE_TOKEN table adds nobody: no traffic to hosts never heard from",
        level: Level::Extension,
        fresh: true,
        run: strangers_table,
    },
    Case {
        id: "10.3",
        slug: "my-state-extras",
        rule: "MY_STATE carries `progress`, `token`, `timestamp_ms`, `host`, `holdings` and `started_ms`",
        level: Level::Extension,
        fresh: true,
        run: my_state_extras,
    },
    Case {
        id: "10.4",
        slug: "better-claim-remembered",
        rule: "LOOSER does not claim for one `generating` after a better claim, even when `looser_answer` fires",
        level: Level::Extension,
        fresh: true,
        run: better_claim_remembered,
    },
];

fn delta_hand_off(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let data = wire::pi_expansion(200);
    let token = Token::new(data.len(), &p.id, 1);
    ctx.start()?;
    let have = json!({ "have": data.len() });
    let mark = ctx.lab.log.mark();
    p.broadcast(&wire::build(Kind::Ping, &p.id, None, have.clone()));
    ctx.expect(mark, 2 * ctx.t.slack, "a TCP PING to the newcomer", |h| {
        h.is_tcp_to(&p.id) && h.kind() == Some(Kind::Ping)
    })?;
    let mut message: serde_json::Value =
        serde_json::from_slice(&wire::take_token(&p.id, &token, &ctx.table(&[&p]), &data)).expect("our JSON");
    message["have"] = json!(data.len());
    let mark = ctx.lab.log.mark();
    p.send_tcp(ctx.slot.host, &serde_json::to_vec(&message).expect("JSON"))
        .map_err(|e| fail("the node to take a TAKE_TOKEN", e.to_string()))?;
    let back = ctx.expect(mark, ctx.hand_off_bound(), "a TAKE_TOKEN back", |h| {
        h.is_tcp_to(&p.id) && h.kind() == Some(Kind::TakeToken)
    })?;
    let w = back.wire().expect("parsed");
    let expected = wire::pi_expansion(220);
    let from = w.number("data_from");
    // The new digits, whichever their number (that is section 4's business).
    let new = w.data.as_deref().unwrap_or_default();
    let continues = !new.is_empty() && expected[data.len()..].starts_with(new);
    if from != Some(data.len() as u64) || !continues {
        return Err(fail(
            format!("`data_from` {} and only the new digits `{}`", data.len(), &expected[data.len()..]),
            format!(
                "{} and {} characters of `data`",
                from.map_or("no `data_from`".to_owned(), |f| format!("`data_from` {f}")),
                new.len()
            ),
        ));
    }
    Ok(())
}

fn strangers_table(ctx: &mut Ctx) -> Checked {
    let a1 = ctx.peer(&ctx.before(1));
    // A host that runs a node but never said a word: only the stranger's
    // table names it.
    let ghost = ctx.peer(&ctx.after(2));
    let stranger = ctx.peer(&ctx.after(5));
    let beating = ctx.ring(&a1, &[], &Token::new(102, &a1.id, 1))?;
    beating.stop();
    let data = wire::pi_expansion(300);
    let mut table = ctx.table(&[&a1, &stranger]);
    table.insert(ghost.id.clone(), ghost.host.to_string());
    let mark = ctx.lab.log.mark();
    stranger
        .send_tcp(
            ctx.slot.host,
            &wire::take_token(&stranger.id, &Token::new(data.len(), &stranger.id, 1), &table, &data),
        )
        .map_err(|e| fail("the node to take a TAKE_TOKEN", e.to_string()))?;
    let next = ctx.next_hand_off(mark, ctx.hand_off_bound())?;
    let nodes = next.wire().and_then(|w| w.nodes.clone()).unwrap_or_default();
    if nodes.contains_key(&ghost.id) {
        return Err(fail(
            format!("no {:?} (only a stranger's table named it) in the node's table", ghost.id),
            format!("`nodes` {nodes:?}"),
        ));
    }
    let ghost_id = ghost.id.clone();
    ctx.quiet(
        mark,
        2 * ctx.t.waiter,
        &format!("nothing sent to {} (named only by a stranger)", ghost.host),
        |h| matches!(&h.channel, Channel::Tcp { to } | Channel::Unicast { to } if *to == ghost_id),
    )
}

fn my_state_extras(ctx: &mut Ctx) -> Checked {
    let mark = ctx.lab.log.mark();
    ctx.owner_alone()?;
    let report = ctx.expect(mark, 2 * ctx.t.slack, "MY_STATE -> OwnerState", |h| {
        h.channel == Channel::Monitor && h.wire().is_some_and(|w| w.text("new_state") == Some("OwnerState"))
    })?;
    let w = report.wire().expect("parsed");
    let missing: Vec<&str> = ["progress", "token", "timestamp_ms", "host", "holdings", "started_ms"]
        .into_iter()
        .filter(|f| w.value.get(*f).is_none_or(serde_json::Value::is_null))
        .collect();
    if !missing.is_empty() {
        return Err(fail("every optional field of section 10", format!("no {}", missing.join(", "))));
    }
    Ok(())
}

fn better_claim_remembered(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.after(1));
    let mark = ctx.lab.log.mark();
    ctx.start()?;
    let first = ctx.expect(mark, ctx.t.looser_ask + 2 * ctx.t.slack, "WHERE_IS_TOKEN at the start", |h| {
        h.channel == Channel::Broadcast && h.kind() == Some(Kind::WhereIsToken)
    })?;
    // A better claim half-way to the node's `looser_answer`, and then
    // silence: the claimer died before making its token.
    ctx.let_time_pass((first.at + ctx.t.looser_answer / 2).saturating_duration_since(Instant::now()));
    let claimed = Instant::now();
    let after = ctx.lab.log.mark();
    p.say(Kind::GeneratingToken, Some(&Token::new(1000, &p.id, 1)));
    let claim = |h: &crate::lab::Heard| h.channel == Channel::Broadcast && h.kind() == Some(Kind::GeneratingToken);
    let patience = ctx.t.generating.saturating_sub(ctx.t.slack);
    ctx.quiet(after, patience, "no GENERATING_TOKEN for a `generating` after a better claim", claim)?;
    let left =
        (claimed + ctx.t.generating + ctx.t.looser_answer + 2 * ctx.t.slack).saturating_duration_since(Instant::now());
    ctx.expect(after, left, "a claim of its own once the better claimer stayed silent", claim).map(drop)
}
