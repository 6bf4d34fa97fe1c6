//! PROTOCOL section 5: transport.

use super::{fail, Case, Checked, Ctx, Failure, Level};
use crate::lab::{Beating, Channel, Peer};
use crate::wire::{self, Kind, Token};
use serde_json::json;
use std::io::Write;

pub const CASES: &[Case] = &[
    Case {
        id: "5.1",
        slug: "broadcasts-from-own-address",
        rule: "a broadcast leaves from the node's own address (receivers learn the sender's host from it)",
        level: Level::Required,
        fresh: true,
        run: broadcasts_from_own_address,
    },
    Case {
        id: "5.2",
        slug: "survives-garbage-datagrams",
        rule: "garbage, truncated, oversized and ill-typed datagrams are dropped; the node keeps answering",
        level: Level::Required,
        fresh: false,
        run: survives_garbage,
    },
    Case {
        id: "5.3",
        slug: "survives-idle-and-slow-tcp-clients",
        rule: "idle or slow TCP clients cannot stall the node: it keeps answering and taking messages",
        level: Level::Required,
        fresh: false,
        run: survives_idle_tcp,
    },
];

fn broadcasts_from_own_address(ctx: &mut Ctx) -> Checked {
    let mark = ctx.lab.log.mark();
    ctx.owner_alone()?;
    let id = ctx.slot.id.clone();
    let own: Vec<_> = ctx
        .lab
        .log
        .since(mark)
        .into_iter()
        .filter(|h| h.channel == Channel::Broadcast && h.wire().is_some_and(|w| w.author == id))
        .collect();
    if let Some(h) = own.iter().find(|h| h.from != ctx.slot.host) {
        return Err(fail(format!("every broadcast from {}", ctx.slot.host), h.describe()));
    }
    if own.len() < 2 {
        return Err(fail("a search, a claim and a token broadcast", format!("{} broadcasts", own.len())));
    }
    Ok(())
}

/// Start the node in a ring whose token a peer holds (it waits), or take
/// it as it runs (`--target`). Returns the holder's heartbeat.
fn running(ctx: &mut Ctx) -> Result<Option<(Peer, Beating)>, Failure> {
    if !ctx.fresh() {
        ctx.start()?;
        return Ok(None);
    }
    let holder = ctx.peer(&ctx.after(9));
    let beating = ctx.ring(&holder, &[], &Token::new(102, &holder.id, 1))?;
    Ok(Some((holder, beating)))
}

/// The node still hears and answers: a newcomer gets its TCP PING.
fn still_answers(ctx: &mut Ctx, k: u32, after: &str) -> Checked {
    let newcomer = ctx.peer(&ctx.after(k));
    ctx.join(&newcomer).map_err(|f| fail(format!("{} {after}", f.expected), f.observed))
}

fn survives_garbage(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let _ring = running(ctx)?;
    let oversized = format!(
        r#"{{"serial_code": 581831, "type": "ping", "author_node_id": "{}", "pad": "{}"}}"#,
        p.id,
        "x".repeat(9000)
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        br#"{"serial_code": 581831, "type": "ping", "author_node_id": "#.to_vec(),
        br#"[1, 2, 3]"#.to_vec(),
        br#"{"serial_code": 581831, "type": 5, "author_node_id": "x"}"#.to_vec(),
        br#"{"serial_code": 1, "type": "no such type", "author_node_id": "x"}"#.to_vec(),
        br#"{"serial_code": 328067, "type": "token is here", "author_node_id": "x", "token": "broken"}"#.to_vec(),
        wire::build(Kind::TokenIsHere, "", None, json!({})),
        oversized.into_bytes(),
        vec![b'{'; 4096],
    ];
    for bytes in &garbage {
        p.broadcast(bytes);
        p.datagram(ctx.slot.host, bytes);
    }
    ctx.alive()?;
    still_answers(ctx, 1, "after garbage datagrams")?;
    ctx.alive()
}

fn survives_idle_tcp(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let ring = running(ctx)?;
    let connect = |what: &str| -> Result<std::net::TcpStream, Failure> {
        p.connect(ctx.slot.host).map_err(|e| fail(format!("the node to accept {what}"), e.to_string()))
    };
    // Idle clients that connect and say nothing, and one that writes a
    // byte at a time, slowly.
    let idle: Vec<_> = (0..4).map(|_| connect("an idle TCP client")).collect::<Result<_, _>>()?;
    let mut slow = connect("a slow TCP client")?;
    let _ = slow.write_all(b"{\"serial_code\": ");
    still_answers(ctx, 1, "while 4 TCP clients are idle and one is slow")?;
    // Keep them so for a while (longer than a waiter period), the slow one
    // writing a byte now and then.
    for byte in b"581831, \"type\"".iter().take(4) {
        let _ = slow.write_all(&[*byte]);
        ctx.let_time_pass(ctx.t.waiter / 4);
    }
    // Its own TCP port still takes messages: the holder hands it the token.
    if let Some((holder, beating)) = ring {
        let data = wire::pi_expansion(100);
        let token = Token::new(data.len(), &holder.id, 1);
        let mark = ctx.lab.log.mark();
        drop(beating);
        ctx.hand(&holder, &token, &data, &ctx.table(&[&holder]))?;
        ctx.handed_on(mark, ctx.hand_off_bound(), data.len())
            .map_err(|f| fail(format!("{}, though 4 TCP clients are idle and one is slow", f.expected), f.observed))?;
    }
    still_answers(ctx, 2, "again, the clients still connected")?;
    drop(idle);
    ctx.alive()
}
