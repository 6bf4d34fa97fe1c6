//! PROTOCOL section 7: the states, rule by rule (OWNER, WAITER, LOOSER,
//! GENERATING, and MY_STATE on each change).

use super::{fail, ms, token_of, Case, Checked, Ctx, Failure, Level};
use crate::lab::{Channel, Heard, Peer};
use crate::wire::{self, Kind, Token};
use std::time::{Duration, Instant};

pub const CASES: &[Case] = &[
    Case {
        id: "7.1",
        slug: "owner-heartbeat-period",
        rule: "OWNER broadcasts TOKEN_IS_HERE every `heartbeat`",
        level: Level::Required,
        fresh: true,
        run: owner_heartbeat,
    },
    Case {
        id: "7.2",
        slug: "owner-answers-where-is-token",
        rule: "OWNER answers WHERE_IS_TOKEN with TOKEN_IS_HERE to the sender",
        level: Level::Required,
        fresh: true,
        run: owner_answers_where,
    },
    Case {
        id: "7.3",
        slug: "owner-answers-claim",
        rule: "OWNER answers GENERATING_TOKEN with TOKEN_IS_HERE to the sender and by broadcast",
        level: Level::Required,
        fresh: true,
        run: owner_answers_claim,
    },
    Case {
        id: "7.4",
        slug: "owner-yields-to-better-token",
        rule: "OWNER hearing a better TOKEN_IS_HERE answers PING, drops its token and waits",
        level: Level::Required,
        fresh: true,
        run: owner_yields,
    },
    Case {
        id: "7.5",
        slug: "owner-answers-worse-token",
        rule: "OWNER hearing a worse TOKEN_IS_HERE answers TOKEN_IS_HERE to the sender and by broadcast, and keeps its token",
        level: Level::Required,
        fresh: true,
        run: owner_answers_worse,
    },
    Case {
        id: "7.6",
        slug: "waiter-silent-while-heartbeats",
        rule: "WAITER restarts `waiter` on each TOKEN_IS_HERE: while the holder heart-beats it neither searches nor claims",
        level: Level::Required,
        fresh: true,
        run: waiter_silent,
    },
    Case {
        id: "7.7",
        slug: "waiter-detects-loss",
        rule: "WAITER declares the token lost `waiter` after the last TOKEN_IS_HERE and searches (WHERE_IS_TOKEN)",
        level: Level::Required,
        fresh: true,
        run: waiter_detects_loss,
    },
    Case {
        id: "7.8",
        slug: "waiter-answers-where-is-token",
        rule: "WAITER answers WHERE_IS_TOKEN with TOKEN_WAS_HERE_RECENTLY to the sender",
        level: Level::Required,
        fresh: true,
        run: waiter_answers_where,
    },
    Case {
        id: "7.9",
        slug: "start-up-pings",
        rule: "a node starts by broadcasting PING three times (the older implementation does not)",
        level: Level::Optional,
        fresh: true,
        run: start_up_pings,
    },
    Case {
        id: "7.10",
        slug: "looser-asks-every-looser-ask",
        rule: "LOOSER broadcasts WHERE_IS_TOKEN on entry and every `looser_ask`",
        level: Level::Required,
        fresh: true,
        run: looser_asks,
    },
    Case {
        id: "7.11",
        slug: "looser-claims-after-looser-answer",
        rule: "LOOSER unanswered for `looser_answer` claims: GENERATING_TOKEN with its candidate",
        level: Level::Required,
        fresh: true,
        run: looser_claims,
    },
    Case {
        id: "7.12",
        slug: "looser-waits-while-token-was-here",
        rule: "LOOSER restarts its timers on TOKEN_WAS_HERE_RECENTLY: it does not claim while told so",
        level: Level::Required,
        fresh: true,
        run: looser_waits,
    },
    Case {
        id: "7.13",
        slug: "looser-joins-a-live-token",
        rule: "LOOSER hearing TOKEN_IS_HERE waits (WAITER): it stops searching",
        level: Level::Required,
        fresh: true,
        run: looser_joins,
    },
    Case {
        id: "7.14",
        slug: "looser-yields-to-better-claim",
        rule: "LOOSER hearing a better GENERATING_TOKEN stays LOOSER: it does not claim against it",
        level: Level::Required,
        fresh: true,
        run: looser_yields,
    },
    Case {
        id: "7.15",
        slug: "looser-claims-against-worse-claim",
        rule: "LOOSER hearing a worse GENERATING_TOKEN claims at once",
        level: Level::Required,
        fresh: true,
        run: looser_claims_against_worse,
    },
    Case {
        id: "7.16",
        slug: "generating-becomes-owner",
        rule: "GENERATING unchallenged for `generating` makes its candidate the token and holds it",
        level: Level::Required,
        fresh: true,
        run: generating_becomes_owner,
    },
    Case {
        id: "7.17",
        slug: "generating-yields-to-better-claim",
        rule: "GENERATING hearing a better GENERATING_TOKEN backs off to LOOSER: it makes no token",
        level: Level::Required,
        fresh: true,
        run: generating_yields_to_claim,
    },
    Case {
        id: "7.18",
        slug: "generating-answers-worse-claim",
        rule: "GENERATING answers a worse GENERATING_TOKEN with its own, to the sender (the older implementation does not)",
        level: Level::Optional,
        fresh: true,
        run: generating_answers_worse,
    },
    Case {
        id: "7.19",
        slug: "generating-yields-to-token",
        rule: "GENERATING hearing TOKEN_IS_HERE with a better token waits (WAITER): it makes no token",
        level: Level::Required,
        fresh: true,
        run: generating_yields_to_token,
    },
    Case {
        id: "7.20",
        slug: "my-state-on-state-changes",
        rule: "MY_STATE goes to the monitoring port on each change: LOOSER, GENERATING, OWNER at a cold start",
        level: Level::Required,
        fresh: true,
        run: my_state_on_changes,
    },
    Case {
        id: "7.21",
        slug: "late-heartbeat-keeps-token",
        rule: "OWNER hearing TOKEN_IS_HERE with a token equal to its own from the node that just handed it over keeps the token",
        level: Level::Required,
        fresh: true,
        run: late_heartbeat_keeps_token,
    },
];

fn broadcast(kind: Kind) -> impl Fn(&Heard) -> bool {
    move |h| h.channel == Channel::Broadcast && h.kind() == Some(kind)
}

fn tcp_to(peer: &str, kind: Kind) -> impl Fn(&Heard) -> bool + '_ {
    move |h| h.is_tcp_to(peer) && h.kind() == Some(kind)
}

/// The node's answer of `kind` by TCP to `peer`, within two slacks of
/// `mark`.
fn answer(ctx: &Ctx, mark: usize, peer: &Peer, kind: Kind, expected: &str) -> Result<Heard, Failure> {
    ctx.expect(mark, 2 * ctx.t.slack, expected, tcp_to(&peer.id, kind))
}

/// Time from `since` to `at` within `[low, high]`, or a failure naming `what`.
fn timed(what: &str, since: Instant, at: Instant, low: Duration, high: Duration) -> Checked {
    let took = at.saturating_duration_since(since);
    if took < low || took > high {
        return Err(fail(format!("{what} after {} to {}", ms(low), ms(high)), format!("after {}", ms(took))));
    }
    Ok(())
}

/// Start the node and return its first WHERE_IS_TOKEN (it is LOOSER).
fn first_search(ctx: &mut Ctx) -> Result<Heard, Failure> {
    let mark = ctx.lab.log.mark();
    ctx.start()?;
    ctx.expect(
        mark,
        ctx.t.looser_ask + 2 * ctx.t.slack,
        "WHERE_IS_TOKEN on entering LOOSER at the start",
        broadcast(Kind::WhereIsToken),
    )
}

/// Start the node and return its first GENERATING_TOKEN.
fn first_claim(ctx: &mut Ctx) -> Result<Heard, Failure> {
    let search = first_search(ctx)?;
    let mark = ctx.lab.log.mark();
    let left = (search.at + ctx.t.looser_answer + 2 * ctx.t.slack).saturating_duration_since(Instant::now());
    ctx.expect(mark, left, "GENERATING_TOKEN `looser_answer` after the first search", broadcast(Kind::GeneratingToken))
}

fn owner_heartbeat(ctx: &mut Ctx) -> Checked {
    ctx.owner_alone()?;
    let mark = ctx.lab.log.mark();
    let began = Instant::now();
    ctx.let_time_pass(6 * ctx.t.heartbeat);
    let longest = ctx.longest_silence(mark, began);
    let count = ctx.lab.log.since(mark).iter().filter(|h| ctx.from_node(h) && broadcast(Kind::TokenIsHere)(h)).count();
    let bound = ctx.t.heartbeat + ctx.t.slack;
    if longest > bound {
        return Err(fail(
            format!("TOKEN_IS_HERE at most {} apart", ms(bound)),
            format!("a silence of {}", ms(longest)),
        ));
    }
    if count > 6 * 2 + 1 {
        return Err(fail("about one TOKEN_IS_HERE per `heartbeat` (6 in 6 periods)", format!("{count}")));
    }
    Ok(())
}

fn owner_answers_where(ctx: &mut Ctx) -> Checked {
    let q = ctx.peer(&ctx.after(1));
    let token = ctx.owner_alone()?;
    let mark = ctx.lab.log.mark();
    q.say(Kind::WhereIsToken, None);
    let answer = answer(ctx, mark, &q, Kind::TokenIsHere, "TOKEN_IS_HERE by TCP to the asker")?;
    let got = token_of(&answer);
    if (got.author.as_str(), got.revision) != (token.author.as_str(), token.revision) {
        return Err(fail(format!("the node's token {token}"), answer.describe()));
    }
    Ok(())
}

fn owner_answers_claim(ctx: &mut Ctx) -> Checked {
    let q = ctx.peer(&ctx.before(1));
    ctx.owner_alone()?;
    between_heartbeats(ctx)?;
    let mark = ctx.lab.log.mark();
    q.say(Kind::GeneratingToken, Some(&Token::new(0, &q.id, 1)));
    answer(ctx, mark, &q, Kind::TokenIsHere, "TOKEN_IS_HERE by TCP to the claimer")?;
    let bound = ctx.t.heartbeat / 2;
    ctx.expect(
        mark,
        bound,
        "TOKEN_IS_HERE by broadcast at once, before the next heartbeat is due",
        broadcast(Kind::TokenIsHere),
    )
    .map(drop)
}

/// Wait for a heartbeat of the node, and a quarter period more: an
/// answering broadcast then comes well before the next heartbeat is due
/// (and after the quarter period in which a node need not repeat one).
fn between_heartbeats(ctx: &Ctx) -> Checked {
    let mark = ctx.lab.log.mark();
    let beat = ctx.expect(
        mark,
        ctx.t.heartbeat + ctx.t.slack,
        "TOKEN_IS_HERE every `heartbeat`",
        broadcast(Kind::TokenIsHere),
    )?;
    ctx.let_time_pass((beat.at + ctx.t.heartbeat / 4).saturating_duration_since(Instant::now()));
    Ok(())
}

fn owner_yields(ctx: &mut Ctx) -> Checked {
    let q = ctx.peer(&ctx.after(1));
    let token = ctx.owner_alone()?;
    let better = Token::new(token.progress as usize + 100_000, &q.id, 1);
    let mark = ctx.lab.log.mark();
    let _beating = q.heartbeat(&better, ctx.t.heartbeat);
    answer(ctx, mark, &q, Kind::Ping, "PING by TCP to the better holder")?;
    // A heartbeat already on its way is no fault; after that, silence. And
    // it has no token to hand on.
    ctx.let_time_pass(ctx.t.slack);
    let after = ctx.lab.log.mark();
    ctx.quiet(after, 3 * ctx.t.heartbeat, "no TOKEN_IS_HERE (the token dropped)", broadcast(Kind::TokenIsHere))?;
    ctx.quiet(mark, Duration::ZERO, "no TAKE_TOKEN (the token dropped)", |h| h.kind() == Some(Kind::TakeToken))
}

fn owner_answers_worse(ctx: &mut Ctx) -> Checked {
    let q = ctx.peer(&ctx.before(1));
    // Its own progress by an id before the node's: worse.
    let token = ctx.owner_alone()?;
    let worse = Token::new(token.progress as usize, &q.id, token.revision);
    between_heartbeats(ctx)?;
    let mark = ctx.lab.log.mark();
    q.say(Kind::TokenIsHere, Some(&worse));
    let answered = answer(ctx, mark, &q, Kind::TokenIsHere, "TOKEN_IS_HERE by TCP to the worse holder")?;
    let bound = ctx.t.heartbeat / 2;
    let told = ctx.expect(
        mark,
        bound,
        "TOKEN_IS_HERE by broadcast at once, before the next heartbeat is due",
        broadcast(Kind::TokenIsHere),
    )?;
    // It keeps the token: it heart-beats again, or hands the token on (to
    // the worse holder, now a member: maybe at once).
    let left = (told.at + ctx.t.heartbeat + ctx.t.slack).saturating_duration_since(Instant::now());
    let kept = ctx.expect(mark, left, "the token kept (a heartbeat or a hand-off)", |h| {
        broadcast(Kind::TokenIsHere)(h) && h.at > told.at || h.kind() == Some(Kind::TakeToken)
    });
    kept.map(drop).map_err(|f| fail(f.expected, format!("{} after {}", f.observed, answered.describe())))
}

fn waiter_silent(ctx: &mut Ctx) -> Checked {
    let holder = ctx.peer(&ctx.before(1));
    let _beating = ctx.ring(&holder, &[], &Token::new(102, &holder.id, 1))?;
    let mark = ctx.lab.log.mark();
    ctx.quiet(mark, 3 * ctx.t.waiter, "no WHERE_IS_TOKEN, GENERATING_TOKEN or TOKEN_IS_HERE", |h| {
        matches!(h.kind(), Some(Kind::WhereIsToken | Kind::GeneratingToken | Kind::TokenIsHere))
    })
}

fn waiter_detects_loss(ctx: &mut Ctx) -> Checked {
    let holder = ctx.peer(&ctx.before(1));
    let beating = ctx.ring(&holder, &[], &Token::new(102, &holder.id, 1))?;
    ctx.let_time_pass(2 * ctx.t.heartbeat);
    let mark = ctx.lab.log.mark();
    let last = beating.stop();
    let search = ctx.expect(
        mark,
        ctx.t.waiter + 2 * ctx.t.slack,
        "WHERE_IS_TOKEN once the holder is silent",
        broadcast(Kind::WhereIsToken),
    )?;
    timed("the search", last, search.at, ctx.t.waiter.saturating_sub(ctx.t.slack), ctx.t.waiter + ctx.t.slack)
}

fn waiter_answers_where(ctx: &mut Ctx) -> Checked {
    let holder = ctx.peer(&ctx.before(1));
    let q = ctx.peer(&ctx.after(1));
    let _beating = ctx.ring(&holder, &[], &Token::new(102, &holder.id, 1))?;
    let mark = ctx.lab.log.mark();
    q.say(Kind::WhereIsToken, None);
    answer(ctx, mark, &q, Kind::TokenWasHereRecently, "TOKEN_WAS_HERE_RECENTLY by TCP to the asker").map(drop)
}

fn start_up_pings(ctx: &mut Ctx) -> Checked {
    let mark = ctx.lab.log.mark();
    ctx.start()?;
    ctx.let_time_pass(ctx.t.looser_ask.min(ctx.t.looser_answer / 2));
    let pings = ctx.lab.log.since(mark).iter().filter(|h| ctx.from_node(h) && broadcast(Kind::Ping)(h)).count();
    if pings != 3 {
        return Err(fail("3 PING broadcasts at the start", format!("{pings}")));
    }
    Ok(())
}

fn looser_asks(ctx: &mut Ctx) -> Checked {
    let first = first_search(ctx)?;
    let mark = ctx.lab.log.mark();
    let left = (first.at + ctx.t.looser_answer + 2 * ctx.t.slack).saturating_duration_since(Instant::now());
    let claim = ctx.expect(
        mark,
        left,
        "GENERATING_TOKEN `looser_answer` after the first search",
        broadcast(Kind::GeneratingToken),
    )?;
    let asks: Vec<Instant> = std::iter::once(first.at)
        .chain(
            ctx.lab
                .log
                .since(mark)
                .iter()
                .filter(|h| ctx.from_node(h) && broadcast(Kind::WhereIsToken)(h))
                .map(|h| h.at),
        )
        .filter(|at| *at <= claim.at)
        .collect();
    let expected = (ctx.t.looser_answer.as_millis() / ctx.t.looser_ask.as_millis().max(1)).max(1) as usize;
    if asks.len() < expected {
        return Err(fail(
            format!("WHERE_IS_TOKEN every {} before claiming: {expected} or more", ms(ctx.t.looser_ask)),
            format!("{}", asks.len()),
        ));
    }
    let longest = asks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    if longest > ctx.t.looser_ask + ctx.t.slack {
        return Err(fail(
            format!("WHERE_IS_TOKEN every {}", ms(ctx.t.looser_ask)),
            format!("a gap of {}", ms(longest)),
        ));
    }
    Ok(())
}

fn looser_claims(ctx: &mut Ctx) -> Checked {
    let first = first_search(ctx)?;
    let claim = {
        let mark = ctx.lab.log.mark();
        let left = (first.at + ctx.t.looser_answer + 2 * ctx.t.slack).saturating_duration_since(Instant::now());
        ctx.expect(
            mark,
            left,
            "GENERATING_TOKEN `looser_answer` after the first search",
            broadcast(Kind::GeneratingToken),
        )?
    };
    let slack = ctx.t.slack;
    timed("the claim", first.at, claim.at, ctx.t.looser_answer.saturating_sub(slack), ctx.t.looser_answer + slack)?;
    let candidate = token_of(&claim);
    if candidate.progress != 0 {
        return Err(fail("a candidate with progress 0 (a new node has no digits)", claim.describe()));
    }
    Ok(())
}

fn looser_waits(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let mut mark = ctx.lab.log.mark();
    ctx.start()?;
    let told = wire::build(Kind::TokenWasHereRecently, &p.id, None, serde_json::json!({}));
    let until = Instant::now() + 2 * ctx.t.looser_answer + ctx.t.looser_ask;
    let searches = |h: &Heard| matches!(h.kind(), Some(Kind::WhereIsToken | Kind::GeneratingToken));
    while let Some((at, heard)) = ctx.lab.log.wait_for_at(mark, until, |h| ctx.from_node(h) && searches(h)) {
        if heard.kind() == Some(Kind::GeneratingToken) {
            return Err(fail(
                format!(
                    "no GENERATING_TOKEN while each WHERE_IS_TOKEN is answered by TOKEN_WAS_HERE_RECENTLY ({} in all)",
                    ms(2 * ctx.t.looser_answer + ctx.t.looser_ask)
                ),
                heard.describe(),
            ));
        }
        let _ = p.send_tcp(ctx.slot.host, &told);
        mark = at + 1;
    }
    Ok(())
}

fn looser_joins(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    first_search(ctx)?;
    let _beating = p.heartbeat(&Token::new(102, &p.id, 1), ctx.t.heartbeat);
    ctx.let_time_pass(ctx.t.slack);
    let mark = ctx.lab.log.mark();
    ctx.quiet(mark, 2 * ctx.t.looser_answer, "no WHERE_IS_TOKEN or GENERATING_TOKEN once a token is heard", |h| {
        matches!(h.kind(), Some(Kind::WhereIsToken | Kind::GeneratingToken))
    })
}

fn looser_yields(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.after(1));
    first_search(ctx)?;
    let better = Token::new(1000, &p.id, 1);
    let mark = ctx.lab.log.mark();
    p.say(Kind::GeneratingToken, Some(&better));
    // The claimer makes its token before the node's `looser_answer` is up.
    ctx.let_time_pass(ctx.t.looser_answer.min(ctx.t.generating) / 3);
    let _beating = p.heartbeat(&better, ctx.t.heartbeat);
    ctx.quiet(mark, 2 * ctx.t.looser_answer, "no GENERATING_TOKEN against a better claim (and its token)", |h| {
        h.kind() == Some(Kind::GeneratingToken)
    })
}

fn looser_claims_against_worse(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let first = first_search(ctx)?;
    let worse = Token::new(0, &p.id, 1);
    let mark = ctx.lab.log.mark();
    let sent = Instant::now();
    p.say(Kind::GeneratingToken, Some(&worse));
    let bound = ctx.t.looser_answer / 2;
    let claim =
        ctx.expect(mark, bound, "GENERATING_TOKEN at once against a worse claim", broadcast(Kind::GeneratingToken))?;
    // A claim that was due anyway proves nothing.
    if claim.at >= first.at + ctx.t.looser_answer.saturating_sub(ctx.t.slack) {
        return Err(fail(
            "a claim well before `looser_answer`",
            format!("{} after the worse claim", ms(claim.at - sent)),
        ));
    }
    Ok(())
}

fn generating_becomes_owner(ctx: &mut Ctx) -> Checked {
    let claim = first_claim(ctx)?;
    let candidate = token_of(&claim);
    let mark = ctx.lab.log.mark();
    let left = (claim.at + ctx.t.generating + 2 * ctx.t.slack).saturating_duration_since(Instant::now());
    let token = ctx.expect(mark, left, "TOKEN_IS_HERE `generating` after the claim", broadcast(Kind::TokenIsHere))?;
    timed(
        "the token",
        claim.at,
        token.at,
        ctx.t.generating.saturating_sub(ctx.t.slack),
        ctx.t.generating + ctx.t.slack,
    )?;
    let made = token_of(&token);
    if made.author != ctx.slot.id || made.revision != candidate.revision {
        return Err(fail(
            format!("the candidate made a token: author {:?}, revision {}", ctx.slot.id, candidate.revision),
            token.describe(),
        ));
    }
    Ok(())
}

fn generating_yields_to_claim(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.after(1));
    first_claim(ctx)?;
    // A better claim, and then silence: the node must search again (LOOSER)
    // and make no token at the end of its own `generating`.
    let mark = ctx.lab.log.mark();
    p.say(Kind::GeneratingToken, Some(&Token::new(1000, &p.id, 1)));
    ctx.expect(mark, 2 * ctx.t.slack, "WHERE_IS_TOKEN on going back to LOOSER", broadcast(Kind::WhereIsToken))?;
    ctx.quiet(
        mark,
        ctx.t.generating + ctx.t.slack,
        "no TOKEN_IS_HERE from the node (no token made)",
        broadcast(Kind::TokenIsHere),
    )
}

fn generating_answers_worse(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let claim = first_claim(ctx)?;
    let mark = ctx.lab.log.mark();
    p.say(Kind::GeneratingToken, Some(&Token::new(0, &p.id, 1)));
    let answer = answer(ctx, mark, &p, Kind::GeneratingToken, "GENERATING_TOKEN by TCP to the worse claimer")?;
    if token_of(&answer) != token_of(&claim) {
        return Err(fail(format!("the node's candidate {}", token_of(&claim)), answer.describe()));
    }
    Ok(())
}

fn generating_yields_to_token(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    first_claim(ctx)?;
    let mark = ctx.lab.log.mark();
    let _beating = p.heartbeat(&Token::new(1000, &p.id, 1), ctx.t.heartbeat);
    ctx.quiet(
        mark,
        ctx.t.generating + ctx.t.slack + 2 * ctx.t.heartbeat,
        "no TOKEN_IS_HERE or GENERATING_TOKEN from the node",
        |h| matches!(h.kind(), Some(Kind::TokenIsHere | Kind::GeneratingToken)) && h.channel == Channel::Broadcast,
    )
}

fn my_state_on_changes(ctx: &mut Ctx) -> Checked {
    let mark = ctx.lab.log.mark();
    ctx.owner_alone()?;
    let first =
        |kind: Kind| ctx.lab.log.since(mark).into_iter().find(|h| ctx.from_node(h) && broadcast(kind)(h)).map(|h| h.at);
    let changes = [
        (first(Kind::WhereIsToken), None, "LooserState"),
        (first(Kind::GeneratingToken), Some("LooserState"), "GeneratingState"),
        (first(Kind::TokenIsHere), Some("GeneratingState"), "OwnerState"),
    ];
    for (event, old, new) in changes {
        let Some(event) = event else { continue };
        let wanted = |h: &Heard| {
            h.channel == Channel::Monitor
                && h.wire().is_some_and(|w| {
                    w.kind == Kind::MyState
                        && w.text("new_state") == Some(new)
                        && old.is_none_or(|o| w.text("old_state") == Some(o))
                })
        };
        let what = format!("MY_STATE {} -> {new} on the monitoring port", old.unwrap_or("any"));
        let left = (event + 2 * ctx.t.slack).saturating_duration_since(Instant::now());
        ctx.expect(mark, left, &what, wanted)?;
    }
    Ok(())
}

fn late_heartbeat_keeps_token(ctx: &mut Ctx) -> Checked {
    // A long expansion, so that the node holds the token a while (it checks
    // the digits); the old holder's last heartbeat arrives meanwhile, as
    // UDP may deliver it after the TCP hand-off.
    let p = ctx.peer(&ctx.before(1));
    let data = wire::pi_expansion(LATE_HEARTBEAT_DIGITS);
    let token = Token::new(data.len(), &p.id, 1);
    let beating = ctx.ring(&p, &[], &token)?;
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&p, &token, &data, &ctx.table(&[&p]))?;
    p.say(Kind::TokenIsHere, Some(&token));
    // Kept, the token goes on with its author and revision; dropped, it
    // could only come back regenerated, later than `waiter`.
    let next = ctx
        .handed_on(mark, ctx.t.waiter, data.len())
        .map_err(|f| fail(format!("{} (the token kept despite the late heartbeat)", f.expected), f.observed))?;
    let got = token_of(&next);
    if (got.author.as_str(), got.revision) != (p.id.as_str(), 1) {
        return Err(fail(format!("the token handed to it, {token}, handed on"), next.describe()));
    }
    Ok(())
}

/// Digits handed in 7.21: enough that checking them takes a correct node
/// longer than a datagram takes on loopback.
const LATE_HEARTBEAT_DIGITS: usize = 50_000;
