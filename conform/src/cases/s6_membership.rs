//! PROTOCOL section 6 (any message, before the state acts) and the ring
//! order of section 1, which decides where the token goes.

use super::{fail, recipient, Case, Checked, Ctx, Level};
use crate::lab::Peer;
use crate::wire::{self, Kind, Token};
use serde_json::json;

pub const CASES: &[Case] = &[
    Case {
        id: "6.1",
        slug: "newcomer-pinged",
        rule: "a newcomer's broadcast PING is answered by a TCP PING, so it learns of the node",
        level: Level::Required,
        fresh: false,
        run: newcomer_pinged,
    },
    Case {
        id: "6.2",
        slug: "newcomer-in-next-table",
        rule: "a newcomer joins the registry: the node's next TAKE_TOKEN lists it with its host",
        level: Level::Required,
        fresh: true,
        run: newcomer_in_next_table,
    },
    Case {
        id: "6.3",
        slug: "token-to-next-in-ring-order",
        rule: "the token goes to the next id in ring order (ids ascending, byte by byte)",
        level: Level::Required,
        fresh: true,
        run: next_in_ring_order,
    },
    Case {
        id: "6.4",
        slug: "ring-order-wraps-around",
        rule: "after the greatest id the ring wraps around to the smallest",
        level: Level::Required,
        fresh: true,
        run: wraps_around,
    },
    Case {
        id: "6.5",
        slug: "token-passes-a-refusing-member",
        rule: "a member that refuses the connection is marked lost and the token goes to the one after it",
        level: Level::Required,
        fresh: true,
        run: passes_refusing_member,
    },
    Case {
        id: "6.6",
        slug: "own-id-ignored",
        rule: "a message with the node's own `author_node_id` is ignored (and never stops the node)",
        level: Level::Required,
        fresh: true,
        run: own_id_ignored,
    },
];

fn newcomer_pinged(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    ctx.start()?;
    ctx.join(&p)
}

fn newcomer_in_next_table(ctx: &mut Ctx) -> Checked {
    let holder = ctx.peer(&ctx.before(1));
    let newcomer = ctx.peer(&ctx.after(1));
    let data = wire::pi_expansion(100);
    let token = Token::new(data.len(), &holder.id, 1);
    let beating = ctx.ring(&holder, &[], &token)?;
    ctx.join(&newcomer)?;
    let mark = ctx.lab.log.mark();
    drop(beating);
    // The holder's table does not know the newcomer yet.
    ctx.hand(&holder, &token, &data, &ctx.table(&[&holder]))?;
    let next = ctx.next_hand_off(mark, ctx.hand_off_bound())?;
    let nodes = next.wire().and_then(|w| w.nodes.clone()).unwrap_or_default();
    for (id, host) in [(&newcomer.id, newcomer.host), (&holder.id, holder.host), (&ctx.slot.id, ctx.slot.host)] {
        if nodes.get(id.as_str()) != Some(&host.to_string()) {
            return Err(fail(format!("`nodes` to map {id:?} to {host}"), format!("`nodes` {nodes:?}")));
        }
    }
    Ok(())
}

/// A ring of the node and `peers`, `holder` among them; the holder hands
/// the node the token, and the node's next hand-off must go to `expected`.
fn hand_off_goes_to(ctx: &mut Ctx, holder: &Peer, others: &[&Peer], expected: &str, rule: &str) -> Checked {
    let data = wire::pi_expansion(100);
    let token = Token::new(data.len(), &holder.id, 1);
    let beating = ctx.ring(holder, others, &token)?;
    let mut all = others.to_vec();
    all.push(holder);
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(holder, &token, &data, &ctx.table(&all))?;
    let next = ctx.next_hand_off(mark, ctx.hand_off_bound())?;
    if recipient(&next) != expected {
        return Err(fail(format!("the token handed to {expected} ({rule})"), next.describe()));
    }
    Ok(())
}

fn next_in_ring_order(ctx: &mut Ctx) -> Checked {
    let (a1, x1, x2) = (ctx.peer(&ctx.before(1)), ctx.peer(&ctx.after(1)), ctx.peer(&ctx.after(2)));
    // Joined out of order: the ring's order is the ids', not the joining's.
    let expected = x1.id.clone();
    hand_off_goes_to(ctx, &a1, &[&x2, &x1], &expected, "the first id after the node's")
}

fn wraps_around(ctx: &mut Ctx) -> Checked {
    let (a1, a2) = (ctx.peer(&ctx.before(1)), ctx.peer(&ctx.before(2)));
    let expected = a1.id.clone();
    hand_off_goes_to(ctx, &a2, &[&a1], &expected, "the node's id is the greatest: wrap to the smallest")
}

fn passes_refusing_member(ctx: &mut Ctx) -> Checked {
    let a1 = ctx.peer(&ctx.before(1));
    let mut x1 = ctx.peer(&ctx.after(1));
    let data = wire::pi_expansion(100);
    let token = Token::new(data.len(), &a1.id, 1);
    let beating = ctx.ring(&a1, &[&x1], &token)?;
    // x1 answered the node's PING; now its port refuses connections.
    x1.close();
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&a1, &token, &data, &ctx.table(&[&a1, &x1]))?;
    let next = ctx.next_hand_off(mark, ctx.hand_off_bound() + ctx.t.slack)?;
    if recipient(&next) != a1.id {
        return Err(fail(format!("the token handed past {} (refusing) to {}", x1.id, a1.id), next.describe()));
    }
    Ok(())
}

fn own_id_ignored(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let token = ctx.owner_alone()?;
    let me = ctx.slot.id.clone();
    let mark = ctx.lab.log.mark();
    let began = std::time::Instant::now();
    // From another address, in the node's name: a better token, a better
    // claim, a search and a TCP PING. Obeyed, the first would make it yield.
    let better = Token::new(token.progress as usize + 100_000, &me, token.revision + 1);
    p.broadcast(&wire::build(Kind::TokenIsHere, &me, Some(&better), json!({})));
    p.broadcast(&wire::build(Kind::GeneratingToken, &me, Some(&better), json!({})));
    p.broadcast(&wire::build(Kind::WhereIsToken, &me, None, json!({})));
    let _ = p.send_tcp(ctx.slot.host, &wire::build(Kind::Ping, &me, None, json!({})));
    ctx.let_time_pass(4 * ctx.t.heartbeat);
    ctx.alive()?;
    let longest = ctx.longest_silence(mark, began);
    let bound = ctx.t.heartbeat + ctx.t.slack;
    if longest > bound {
        return Err(fail(
            format!("the token kept: TOKEN_IS_HERE at most {} apart", super::ms(bound)),
            format!("a silence of {}; {}", super::ms(longest), ctx.summary(mark)),
        ));
    }
    Ok(())
}
