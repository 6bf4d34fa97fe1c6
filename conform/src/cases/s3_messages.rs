//! PROTOCOL section 3: messages.

use super::{fail, token_of, Case, Checked, Ctx, Failure, Level};
use crate::lab::Channel;
use crate::wire::{self, Kind, Token};
use serde_json::json;

pub const CASES: &[Case] = &[
    Case {
        id: "3.1",
        slug: "messages-parse",
        rule: "every message is one JSON object with its `type`, its `serial_code` and the sender's `author_node_id`",
        level: Level::Required,
        fresh: true,
        run: messages_parse,
    },
    Case {
        id: "3.2",
        slug: "transport-per-type",
        rule: "each message type travels only as section 3's table says (MY_STATE only to the monitoring port)",
        level: Level::Required,
        fresh: true,
        run: transport_per_type,
    },
    Case {
        id: "3.3",
        slug: "unknown-fields-ignored",
        rule: "fields a node does not know are ignored, in messages and in tokens",
        level: Level::Required,
        fresh: true,
        run: unknown_fields_ignored,
    },
];

/// A start, a claim, a token, a hand-off, a question and a hand-back: the
/// node says most of what it can say. Returns the mark it started from.
fn exchange(ctx: &mut Ctx) -> Result<usize, Failure> {
    let mark = ctx.lab.log.mark();
    let p = ctx.peer(&ctx.before(1));
    let q = ctx.peer(&ctx.after(1));
    ctx.start()?;
    ctx.join(&p)?;
    let within = ctx.t.looser_answer + ctx.t.generating + ctx.hand_off_bound() + ctx.t.looser_ask;
    let took = ctx.expect(mark, within, "a TAKE_TOKEN to the only other member", |h| {
        h.is_tcp_to(&p.id) && h.kind() == Some(Kind::TakeToken)
    })?;
    let token = token_of(&took);
    let beating = p.heartbeat(&token, ctx.t.heartbeat);
    let asked = ctx.lab.log.mark();
    q.say(Kind::WhereIsToken, None);
    // Its answer is more to look at; whether it answers is 7.2's and 7.8's
    // business, not this scenario's.
    let _ = ctx.expect(asked, 2 * ctx.t.slack, "an answer to WHERE_IS_TOKEN", |h| {
        h.is_tcp_to(&q.id) && matches!(h.kind(), Some(Kind::TokenWasHereRecently | Kind::TokenIsHere))
    });
    let data = took.wire().and_then(|w| w.whole_data()).unwrap_or_default().to_owned();
    let longer = wire::pi_expansion(data.len().saturating_sub(2) + 20);
    let handed = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&p, &Token::new(longer.len(), &token.author, token.revision), &longer, &ctx.table(&[&p, &q]))?;
    ctx.next_hand_off(handed, ctx.hand_off_bound())?;
    Ok(mark)
}

fn messages_parse(ctx: &mut Ctx) -> Checked {
    let mark = exchange(ctx)?;
    let heard: Vec<_> = ctx.lab.log.since(mark).into_iter().filter(|h| ctx.from_node(h)).collect();
    for h in &heard {
        match &h.message {
            Err(e) => return Err(fail("only valid messages (section 3)", format!("{e}, {}", h.describe()))),
            Ok(w) if w.author != ctx.slot.id => {
                return Err(fail(
                    format!("`author_node_id` {:?}, the node's id", ctx.slot.id),
                    format!("{:?} in {}", w.author, h.describe()),
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn transport_per_type(ctx: &mut Ctx) -> Checked {
    let mark = exchange(ctx)?;
    for h in ctx.lab.log.since(mark).iter().filter(|h| ctx.from_node(h)) {
        let Some(kind) = h.kind() else { continue };
        let allowed = match h.channel {
            Channel::Tcp { .. } => kind.allowed_on_tcp(),
            Channel::Broadcast | Channel::Unicast { .. } => kind.allowed_on_ring_udp(),
            Channel::Monitor => kind == Kind::MyState,
        };
        if !allowed {
            return Err(fail("each type on the transport of section 3's table", h.describe()));
        }
    }
    Ok(())
}

fn unknown_fields_ignored(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    ctx.start()?;
    // A PING with fields of every JSON kind the node cannot know.
    let extra = json!({"x_conform": {"nested": [1, 2.5, null, true]}, "x_note": "ignore me"});
    let mark = ctx.lab.log.mark();
    p.broadcast(&wire::build(Kind::Ping, &p.id, None, extra.clone()));
    ctx.expect(mark, 2 * ctx.t.slack, "a TCP PING back to a PING with unknown fields", |h| {
        h.is_tcp_to(&p.id) && h.kind() == Some(Kind::Ping)
    })?;
    // A TAKE_TOKEN whose message and token carry unknown fields.
    let data = wire::pi_expansion(100);
    let token = Token::new(data.len(), &p.id, 1);
    let mut message: serde_json::Value =
        serde_json::from_slice(&wire::take_token(&p.id, &token, &ctx.table(&[&p]), &data)).expect("our own JSON");
    message["x_conform"] = extra.clone();
    message["token"]["x_conform"] = extra;
    let handed = ctx.lab.log.mark();
    p.send_tcp(ctx.slot.host, &serde_json::to_vec(&message).expect("JSON"))
        .map_err(|e| fail("the node to take a TAKE_TOKEN", e.to_string()))?;
    let back = ctx.next_hand_off(handed, ctx.hand_off_bound())?;
    let got = back.wire().and_then(|w| w.token.clone()).map(|t| t.progress).unwrap_or_default();
    // Taken: handed on longer (how much longer is section 4's business).
    if got <= data.len() as u64 {
        return Err(fail(
            format!("the token taken and handed on with more than {} characters", data.len()),
            back.describe(),
        ));
    }
    Ok(())
}
