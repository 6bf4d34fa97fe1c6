//! PROTOCOL section 8: what must hold after a fault.

use super::{fail, ms, recipient, token_of, Case, Checked, Ctx, Level};
use crate::lab::Channel;
use crate::wire::{self, Kind, Token};

pub const CASES: &[Case] = &[Case {
    id: "8.1",
    slug: "regenerates-after-holder-dies",
    rule: "after the holder dies a new token appears within `waiter + looser_answer + generating`, with no digit lost",
    level: Level::Required,
    fresh: true,
    run: regenerates,
}];

fn regenerates(ctx: &mut Ctx) -> Checked {
    // a1 is a quiet survivor; x1, next after the node, takes the token and dies.
    let a1 = ctx.peer(&ctx.before(1));
    let mut x1 = ctx.peer(&ctx.after(1));
    let data = wire::pi_expansion(200);
    let token = Token::new(data.len(), &a1.id, 1);
    let beating = ctx.ring(&a1, &[&x1], &token)?;
    let mark = ctx.lab.log.mark();
    drop(beating);
    ctx.hand(&a1, &token, &data, &ctx.table(&[&a1, &x1]))?;
    let handed = ctx.expect(mark, ctx.hand_off_bound(), "a TAKE_TOKEN to the next member", |h| {
        h.is_tcp_to(&x1.id) && h.kind() == Some(Kind::TakeToken)
    })?;
    x1.close();
    let held = handed.wire().and_then(|w| w.whole_data()).map_or(0, str::len);
    let bound = ctx.t.recovery() + 2 * ctx.t.slack;
    let after = ctx.lab.log.mark();
    let left = (handed.at + bound).saturating_duration_since(std::time::Instant::now());
    let new = ctx.expect(after, left, "a new token (TOKEN_IS_HERE) after the holder died", |h| {
        h.channel == Channel::Broadcast && h.kind() == Some(Kind::TokenIsHere)
    })?;
    let took = new.at - handed.at;
    let made = token_of(&new);
    if made.author != ctx.slot.id || made.progress < held as u64 {
        return Err(fail(
            format!(
                "a token made by the node with progress {held} or more, the longest expansion (after {})",
                ms(took)
            ),
            new.describe(),
        ));
    }
    // No digit lost: its next hand-off carries all it had, and correct.
    let next = ctx.next_hand_off(after, ctx.hand_off_bound() + ctx.t.slack)?;
    let data = next.wire().and_then(|w| w.whole_data()).unwrap_or_default();
    let correct = wire::correct_prefix(data);
    if correct != data.len() || data.len() < held {
        return Err(fail(
            format!("a correct expansion of {held} characters or more, handed past the dead member to {}", a1.id),
            format!("{} characters, {correct} correct, to {}", data.len(), recipient(&next)),
        ));
    }
    Ok(())
}
