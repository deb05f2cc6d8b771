//! The Redis steps of the payment saga: claim a hold, put it back, finalise it as paid.

use chrono::{DateTime, Utc};
use fred::{prelude::*, types::Value};

use crate::{
    concerts::{ConcertId, ScheduleId, SeatId, SectionId},
    holds::{
        redis::{HoldRecord, Hot},
        HoldId, ENDED_HOLD_RETENTION_MS,
    },
    identity::UserId,
    redis::scripts::{int, text, Tagged},
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
/// paid or being paid.
pub async fn claim(hot: Hot<'_>, user: UserId, hold: HoldId) -> Result<Claim> {
    let c = hold.concert();
    let k = hot.keys;
    let keys = vec![k.hold(c, hold), k.hold_expiry(c), k.hold_paying(c)];
    let reply: Vec<Value> = hot
        .scripts
        .run(
            hot.redis,
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
    let section = text(&data, 1);
    let seats = text(&data, 2);
    let expires_ms = int(&data, 5)?;
    Ok(Claim {
        record: HoldRecord {
            user,
            schedule: ScheduleId::new(int(&data, 0)?),
            section: if section.is_empty() {
                None
            } else {
                Some(SectionId::new(
                    section.parse().map_err(anyhow::Error::from)?,
                ))
            },
            seats: if seats.is_empty() {
                Vec::new()
            } else {
                seats
                    .split(',')
                    .map(|s| s.parse().map(SeatId::new))
                    .collect::<Result<_, _>>()
                    .map_err(anyhow::Error::from)?
            },
        },
        quantity: i32::try_from(int(&data, 3)?).map_err(anyhow::Error::from)?,
        amount: int(&data, 4)?,
        expires_at: DateTime::from_timestamp_millis(expires_ms)
            .ok_or_else(|| anyhow::anyhow!("claim expiry {expires_ms} out of range"))?,
    })
}

/// Puts a PAYING hold back to HELD with its original expiry; `true` if it was PAYING.
pub async fn unclaim(hot: Hot<'_>, hold: HoldId) -> Result<bool> {
    let c = hold.concert();
    let k = hot.keys;
    let keys = vec![k.hold(c, hold), k.hold_expiry(c), k.hold_paying(c)];
    let reply: Vec<Value> = hot
        .scripts
        .run(
            hot.redis,
            &hot.scripts.unclaim_hold,
            keys,
            vec![hold.to_string()],
        )
        .await?;
    match Tagged::parse(reply)? {
        Tagged::Ok(data) => Ok(text(&data, 0) == "restored"),
        Tagged::Err(code) => Err(anyhow::anyhow!("unclaim script replied {code}").into()),
    }
}

/// Records in Redis a payment Postgres committed: seats sold, hold PAID, a `paid` event.
/// `true` if this call changed anything (it is idempotent).
pub async fn finalise(hot: Hot<'_>, hold: HoldId, record: &HoldRecord) -> Result<bool> {
    let c: ConcertId = hold.concert();
    let k = hot.keys;
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
        .scripts
        .run(
            hot.redis,
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

/// Up to `limit` holds of `concert` claimed at or before `claimed_before_ms`.
pub async fn stale_claims(
    hot: Hot<'_>,
    concert: ConcertId,
    claimed_before_ms: i64,
    limit: i64,
) -> Result<Vec<HoldId>> {
    let ids: Vec<String> = hot
        .redis
        .zrangebyscore(
            hot.keys.hold_paying(concert),
            "-inf",
            claimed_before_ms,
            false,
            Some((0, limit)),
        )
        .await?;
    Ok(ids
        .iter()
        .filter_map(|id| uuid::Uuid::parse_str(id).ok().map(HoldId::new))
        .collect())
}
