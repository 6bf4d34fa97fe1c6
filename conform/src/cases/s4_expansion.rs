//! PROTOCOL section 4: the expansion.

use super::{fail, recipient, token_of, Case, Checked, Ctx, Level};
use crate::lab::Heard;
use crate::wire::{self, Kind, Token};

pub const CASES: &[Case] = &[
    Case {
        id: "4.1",
        slug: "first-holding-writes-3-and-20-digits",
        rule: "the first holding of an empty expansion writes `3,` and the first 20 digits of pi",
        level: Level::Required,
        fresh: true,
        run: first_holding,
    },
    Case {
        id: "4.2",
        slug: "holding-adds-20-digits",
        rule: "one holding extends the expansion by exactly 20 digits, and they are pi's",
        level: Level::Required,
        fresh: true,
        run: holding_adds_20,
    },
    Case {
        id: "4.3",
        slug: "wrong-end-is-cut",
        rule: "a received expansion with a wrong end is cut back to its correct prefix before the node adds its digits",
        level: Level::Required,
        fresh: true,
        run: wrong_end_is_cut,
    },
    Case {
        id: "4.4",
        slug: "longer-expansion-kept",
        rule: "a waiter handed a shorter expansion than its own keeps the longer correct one",
        level: Level::Required,
        fresh: true,
        run: longer_kept,
    },
];

/// The hand-off's expansion must be `3,` and exactly `fraction` digits of pi,
/// with a matching `progress`.
fn check_expansion(h: &Heard, fraction: usize, rule: &str) -> Checked {
    let expected = wire::pi_expansion(fraction);
    let w = h.wire().expect("a parsed TAKE_TOKEN");
    let Some(data) = w.whole_data() else {
        return Err(fail("a whole expansion (no `data_from`: this peer never said `have`)", h.describe()));
    };
    if data != expected {
        let correct = wire::correct_prefix(data);
        return Err(fail(
            format!("{rule}: `data` of {} characters, `3,` and {fraction} digits of pi", expected.len()),
            format!(
                "{} characters, of which the first {correct} are pi's ({} to {})",
                data.len(),
                w.kind,
                recipient(h)
            ),
        ));
    }
    let progress = token_of(h).progress;
    if progress != expected.len() as u64 {
        return Err(fail(
            format!("`progress` {}, the length of `data` (section 2)", expected.len()),
            format!("`progress` {progress}"),
        ));
    }
    Ok(())
}

fn first_holding(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let mark = ctx.lab.log.mark();
    ctx.start()?;
    ctx.join(&p)?;
    let within = ctx.t.looser_answer + ctx.t.generating + ctx.hand_off_bound() + ctx.t.looser_ask;
    let took = ctx.expect(mark, within, "a TAKE_TOKEN to the only other member, after generating", |h| {
        h.is_tcp_to(&p.id) && h.kind() == Some(Kind::TakeToken)
    })?;
    check_expansion(&took, 20, "the first holding writes `3,` and 20 digits")
}

/// A ring with holder `p`, which hands the node `data`; returns the node's
/// next hand-off.
fn hand_and_watch(ctx: &mut Ctx, data: &str) -> Result<Heard, super::Failure> {
    let p = ctx.peer(&ctx.before(1));
    let token = Token::new(data.len(), &p.id, 1);
    let beating = ctx.ring(&p, &[], &token)?;
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&p, &token, data, &ctx.table(&[&p]))?;
    ctx.next_hand_off(mark, ctx.hand_off_bound())
}

fn holding_adds_20(ctx: &mut Ctx) -> Checked {
    let back = hand_and_watch(ctx, &wire::pi_expansion(200))?;
    check_expansion(&back, 220, "200 digits handed, 20 added")
}

fn wrong_end_is_cut(ctx: &mut Ctx) -> Checked {
    // 200 digits, the last five wrong: 195 correct ones stay.
    let mut data = wire::pi_expansion(200).into_bytes();
    for digit in &mut data[197..] {
        *digit = b'0' + (*digit - b'0' + 1) % 10;
    }
    let data = String::from_utf8(data).expect("digits");
    let back = hand_and_watch(ctx, &data)?;
    check_expansion(&back, 215, "195 correct digits kept, 20 added")
}

fn longer_kept(ctx: &mut Ctx) -> Checked {
    let p = ctx.peer(&ctx.before(1));
    let long = wire::pi_expansion(400);
    let token = Token::new(long.len(), &p.id, 1);
    let beating = ctx.ring(&p, &[], &token)?;
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&p, &token, &long, &ctx.table(&[&p]))?;
    let first = ctx.next_hand_off(mark, ctx.hand_off_bound())?;
    check_expansion(&first, 420, "400 digits handed, 20 added")?;
    // The token comes back with only 100 digits: the node keeps its 420.
    let beating = p.heartbeat(&token_of(&first), ctx.t.heartbeat);
    let short = wire::pi_expansion(100);
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&p, &Token::new(short.len(), &p.id, 1), &short, &ctx.table(&[&p]))?;
    let second = ctx.next_hand_off(mark, ctx.hand_off_bound())?;
    check_expansion(&second, 440, "its own 420 digits kept over the 100 handed, 20 added")
}
