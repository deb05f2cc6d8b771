//! A hold's side of its payment: the Redis steps of the payment saga (claim it, put it back,
//! finalise it as paid) and the claims the reconciler settles. The payment saga
//! (`payments`) calls these and nothing else of holds' Redis state.
//!
//! States: HELD → PAYING (claimed, out of the expiry set: it cannot expire while it is paid
//! for) → PAID, or PAYING → HELD again with its original expiry when the payment failed.

use chrono::{DateTime, Utc};
use fred::{prelude::*, types::Value};

use super::{
    hold::{HoldRecord, ENDED_HOLD_RETENTION_MS},
    inventory,
    redis::read_record,
    store::Store,
};
use crate::{
    ids::{ConcertId, HoldId, ScheduleId, SeatId, SectionId, UserId},
    redis::{
        scripts::{int, text, Tagged},
        Hot,
    },
    Error, Result,
};

/// A hold claimed for payment: what the Postgres transaction records.
#[derive(Debug, Clone)]
pub struct Claim {
    pub record: HoldRecord,
    pub quantity: i32,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

/// Moves `user`'s HELD hold to PAYING. `HoldNotFound` covers a missing hold and another
/// user's alike; `HoldExpired` an expired one, swept or not; `HoldAlreadyPaid` a hold that is
/// paid or being paid. A hold Redis lost is restored from Postgres first.
pub async fn claim(store: Store<'_>, user: UserId, hold: HoldId) -> Result<Claim> {
    inventory::recovering(store, user, hold, || claim_once(store.hot, user, hold)).await
}

async fn claim_once(hot: &Hot, user: UserId, hold: HoldId) -> Result<Claim> {
    let c = hold.concert();
    let k = &hot.keys;
    let keys = vec![k.hold(c, hold), k.hold_expiry(c), k.hold_paying(c)];
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.claim_hold,
            keys,
            vec![hold.to_string(), user.to_string()],
        )
        .await?;
    let data = match Tagged::parse(reply)? {
        Tagged::Ok(data) => data,
        Tagged::Err(code) => {
            return Err(match code.as_str() {
                "NOT_FOUND" => Error::HoldNotFound,
                "EXPIRED" => Error::HoldExpired,
                "ALREADY_PAID" => Error::HoldAlreadyPaid,
                other => anyhow::anyhow!("claim script replied {other}").into(),
            })
        }
    };
    let (section, seats) = (text(&data, 1), text(&data, 2));
    let expires_ms = int(&data, 5)?;
    Ok(Claim {
        record: HoldRecord {
            user,
            schedule: ScheduleId::new(int(&data, 0)?),
            section: SectionId::parse_optional(&section)
                .ok_or_else(|| anyhow::anyhow!("claim replied section {section:?}"))?,
            seats: SeatId::parse_list(&seats)
                .ok_or_else(|| anyhow::anyhow!("claim replied seats {seats:?}"))?,
        },
        quantity: i32::try_from(int(&data, 3)?).map_err(anyhow::Error::from)?,
        amount: int(&data, 4)?,
        expires_at: DateTime::from_timestamp_millis(expires_ms)
            .ok_or_else(|| anyhow::anyhow!("claim expiry {expires_ms} out of range"))?,
    })
}

/// Puts a PAYING hold back to HELD with its original expiry; `true` if it was PAYING.
pub async fn unclaim(hot: &Hot, hold: HoldId) -> Result<bool> {
    let c = hold.concert();
    let k = &hot.keys;
    let keys = vec![k.hold(c, hold), k.hold_expiry(c), k.hold_paying(c)];
    let reply: Vec<Value> = hot
        .run(&hot.scripts.unclaim_hold, keys, vec![hold.to_string()])
        .await?;
    match Tagged::parse(reply)? {
        Tagged::Ok(data) => Ok(text(&data, 0) == "restored"),
        Tagged::Err(code) => Err(anyhow::anyhow!("unclaim script replied {code}").into()),
    }
}

/// Records in Redis a payment Postgres committed: seats sold, hold PAID, a `paid` event.
/// `true` if this call changed anything (it is idempotent).
pub async fn finalise(hot: &Hot, hold: HoldId, record: &HoldRecord) -> Result<bool> {
    let c: ConcertId = hold.concert();
    let k = &hot.keys;
    let keys = vec![
        k.hold(c, hold),
        k.seat_owners(c, record.schedule),
        k.user_tickets(c, record.schedule),
        // A seated hold never touches this key; section 0 names none.
        k.ga_remaining(c, record.section.unwrap_or(SectionId::new(0))),
        k.hold_expiry(c),
        k.hold_paying(c),
        k.hold_events(c),
    ];
    let reply: Vec<Value> = hot
        .run(
            &hot.scripts.finalise_hold,
            keys,
            vec![hold.to_string(), ENDED_HOLD_RETENTION_MS.to_string()],
        )
        .await?;
    match Tagged::parse(reply)? {
        Tagged::Ok(data) => Ok(text(&data, 0) == "paid"),
        Tagged::Err(code) if code == "NOT_FOUND" => Ok(false),
        Tagged::Err(code) => Err(anyhow::anyhow!("finalise script replied {code}").into()),
    }
}

/// Finalises a claimed hold known by id only (the reconciler, after Postgres said it is
/// paid); `false` when Redis has no record of it or nothing changed.
pub async fn finalise_claimed(hot: &Hot, hold: HoldId) -> Result<bool> {
    match read_record(hot, hold).await? {
        Some(record) => finalise(hot, hold, &record).await,
        None => Ok(false),
    }
}

/// Up to `limit` holds of `concert` claimed at or before `claimed_before_ms`.
pub async fn stale_claims(
    hot: &Hot,
    concert: ConcertId,
    claimed_before_ms: i64,
    limit: i64,
) -> Result<Vec<HoldId>> {
    let ids: Vec<String> = hot
        .pool
        .next()
        .zrangebyscore(
            hot.keys.hold_paying(concert),
            "-inf",
            claimed_before_ms,
            false,
            Some((0, limit)),
        )
        .await?;
    Ok(ids.iter().filter_map(|id| HoldId::parse(id)).collect())
}
