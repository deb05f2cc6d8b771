//! The hold-event stream, end to end: every change to a hold (held, released, expired, paid)
//! is appended to its concert's stream by the script that made it, and the worker's sink reads
//! the stream, writes the events to Postgres ([`super::pg::write_events`]) and acknowledges
//! them. This module owns the stream's format and every read of it.
//!
//! # The format
//!
//! One entry per script call, in one of two shapes (field names kept short: the stream is
//! written on every hold):
//!
//! - a single event, written by `end_holds.lua` (`released`, `expired`) and
//!   `finalise_hold.lua` (`paid`): `t <kind> h <holdId> u <userId> sc <scheduleId>
//!   se <sectionId or ""> s <seatIds, comma-separated, or ""> q <quantity> a <amount>
//!   x <expiresMs>`;
//! - a batch of holds granted together, written by `hold_seats.lua` and `hold_ga.lua`:
//!   `t held sc <scheduleId> se <sectionId or ""> x <expiresMs> n <count>`, then per hold
//!   `h "<holdId>|<userId>|<quantity>|<amount>|<seatIds>"`.
//!
//! Every event carries the whole hold, so the sink can write any of them first. An entry
//! that does not parse ([`Entry::events`] is `None`) can only come from a bug; the sink logs
//! it and acknowledges it, since keeping it pending would stop the trim behind it.
//!
//! The consumer group is [`SINK_GROUP`]; the stream is trimmed up to the first entry not yet
//! acknowledged ([`ack`]), so its length is the sink's lag.

use chrono::{DateTime, Utc};
use fred::{prelude::*, types::Value};

use crate::{
    ids::{ConcertId, HoldId, ScheduleId, SeatId, SectionId, UserId},
    redis::{keys::SINK_GROUP, Hot},
    Result,
};

/// The lifecycle events the worker mirrors into Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldEventKind {
    Held,
    Released,
    Expired,
    Paid,
}

impl HoldEventKind {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "held" => Self::Held,
            "released" => Self::Released,
            "expired" => Self::Expired,
            "paid" => Self::Paid,
            _ => return None,
        })
    }

    /// The `holds.status` this event leads to.
    pub fn status(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
            Self::Paid => "PAID",
        }
    }

    /// Precedence of the status: a row only ever moves to a higher rank, so replayed or
    /// reordered events cannot move a hold backwards (HELD < RELEASED = EXPIRED < PAID).
    pub fn rank(self) -> u8 {
        match self {
            Self::Held => 0,
            Self::Released | Self::Expired => 1,
            Self::Paid => 2,
        }
    }
}

/// One entry of a concert's hold-event stream. Every event carries the whole hold, so the
/// sink can write any of them first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldEvent {
    pub kind: HoldEventKind,
    pub hold: HoldId,
    pub user: UserId,
    pub schedule: ScheduleId,
    pub section: Option<SectionId>,
    pub seats: Vec<SeatId>,
    pub quantity: i32,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

impl HoldEvent {
    /// Parses one stream entry's field/value pairs: either a batch of holds granted together
    /// (`t held sc se x n`, then `h` per hold; see `hold_ga.lua`) or a single event
    /// ([`Self::from_fields`]). `None` when any part does not parse.
    pub fn parse_entry<'a>(fields: &[(&'a str, &'a str)]) -> Option<Vec<Self>> {
        let get = |name: &str| fields.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
        let Some(count) = get("n") else {
            return Self::from_fields(fields.iter().copied()).map(|e| vec![e]);
        };
        let kind = HoldEventKind::parse(get("t")?)?;
        let schedule = ScheduleId::new(get("sc")?.parse().ok()?);
        let section = SectionId::parse_optional(get("se")?)?;
        let expires_at = DateTime::from_timestamp_millis(get("x")?.parse().ok()?)?;
        let events = fields
            .iter()
            .filter(|(f, _)| *f == "h")
            .map(|(_, packed)| {
                let mut parts = packed.split('|');
                let (h, u, q, a, s) = (
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                );
                Some(Self {
                    kind,
                    hold: HoldId::parse(h)?,
                    user: UserId::new(u.parse().ok()?),
                    schedule,
                    section,
                    seats: SeatId::parse_list(s)?,
                    quantity: q.parse().ok()?,
                    amount: a.parse().ok()?,
                    expires_at,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        // A count that disagrees means a malformed entry, not a shorter batch.
        (events.len() == count.parse::<usize>().ok()?).then_some(events)
    }

    /// Parses the field/value pairs of a single event (`t h u sc se s q a x`).
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let (mut t, mut h, mut u, mut sc, mut se, mut s, mut q, mut a, mut x) =
            (None, None, None, None, None, None, None, None, None);
        for (field, value) in fields {
            let slot = match field {
                "t" => &mut t,
                "h" => &mut h,
                "u" => &mut u,
                "sc" => &mut sc,
                "se" => &mut se,
                "s" => &mut s,
                "q" => &mut q,
                "a" => &mut a,
                "x" => &mut x,
                _ => continue,
            };
            *slot = Some(value);
        }
        Some(Self {
            kind: HoldEventKind::parse(t?)?,
            hold: HoldId::parse(h?)?,
            user: UserId::new(u?.parse().ok()?),
            schedule: ScheduleId::new(sc?.parse().ok()?),
            section: SectionId::parse_optional(se?)?,
            seats: SeatId::parse_list(s?)?,
            quantity: q?.parse().ok()?,
            amount: a?.parse().ok()?,
            expires_at: DateTime::from_timestamp_millis(x?.parse().ok()?)?,
        })
    }
}

/// One stream entry: its id, and its events when it parses (a batch of holds granted
/// together is one entry).
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub events: Option<Vec<HoldEvent>>,
}

/// Where to read a concert's stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Entries never delivered to any consumer (`>`).
    New,
    /// Entries delivered to this consumer and not acknowledged (a batch that failed).
    OwnPending,
    /// Entries another consumer left pending longer than `idle_ms` (it died): `XAUTOCLAIM`.
    Abandoned { idle_ms: u64 },
}

/// Creates the sink's consumer group on `concert`'s stream (and the stream), from the start,
/// so no event written before the group existed is missed. Idempotent.
pub async fn ensure_group(hot: &Hot, concert: ConcertId) -> Result<()> {
    let created: Result<(), _> = hot
        .pool
        .next()
        .xgroup_create(hot.keys.hold_events(concert), SINK_GROUP, "0", true)
        .await;
    match created {
        Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

/// Reads up to `count` entries for `consumer`.
pub async fn read(
    hot: &Hot,
    concert: ConcertId,
    consumer: &str,
    from: ReadFrom,
    count: u64,
) -> Result<Vec<Entry>> {
    let key = hot.keys.hold_events(concert);
    let value: Value = match from {
        ReadFrom::New | ReadFrom::OwnPending => {
            let id = if from == ReadFrom::New { ">" } else { "0" };
            let reply: Value = hot
                .pool
                .next()
                .xreadgroup(SINK_GROUP, consumer, Some(count), None, false, &key, id)
                .await?;
            // [[key, entries]] under RESP2 (the protocol we speak); nil when there are none.
            match reply {
                Value::Array(streams) => streams
                    .into_iter()
                    .next()
                    .map(|s| s.into_array().into_iter().nth(1).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
        ReadFrom::Abandoned { idle_ms } => {
            let reply: Value = hot
                .pool
                .next()
                .xautoclaim(
                    &key,
                    SINK_GROUP,
                    consumer,
                    idle_ms,
                    "0-0",
                    Some(count),
                    false,
                )
                .await?;
            // [next-cursor, entries, deleted-ids]
            reply.into_array().into_iter().nth(1).unwrap_or(Value::Null)
        }
    };
    Ok(parse_entries(value))
}

fn parse_entries(value: Value) -> Vec<Entry> {
    if value.is_null() {
        return Vec::new();
    }
    value
        .into_array()
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let id = parts.next()?.as_string()?;
            // An entry deleted while pending comes back with nil fields: nothing to write.
            let fields: Vec<String> = parts
                .next()
                .filter(|f| !f.is_null())
                .map(|f| f.into_array().iter().filter_map(Value::as_string).collect())
                .unwrap_or_default();
            let pairs: Vec<(&str, &str)> = fields
                .chunks_exact(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect();
            let events = HoldEvent::parse_entry(&pairs);
            Some(Entry { id, events })
        })
        .collect()
}

/// Acknowledges entries written to Postgres and trims the stream up to the first entry not yet
/// written (`ack_events.lua`), so the stream's length is the sink's lag.
pub async fn ack(hot: &Hot, concert: ConcertId, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut args = Vec::with_capacity(1 + ids.len());
    args.push(SINK_GROUP.to_owned());
    args.extend_from_slice(ids);
    let _: Vec<Value> = hot
        .run(&hot.scripts.ack_events, hot.keys.hold_events(concert), args)
        .await?;
    Ok(())
}

/// Entries of `concert`'s stream not yet written to Postgres (see [`ack`]).
pub async fn lag(hot: &Hot, concert: ConcertId) -> Result<i64> {
    Ok(hot.pool.next().xlen(hot.keys.hold_events(concert)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_from_stream_fields() {
        let hold = HoldId::generate(ConcertId::new(5));
        let h = hold.to_string();
        let fields = [
            ("t", "expired"),
            ("h", h.as_str()),
            ("u", "7"),
            ("sc", "3"),
            ("se", ""),
            ("s", "10,11"),
            ("q", "2"),
            ("a", "200"),
            ("x", "1700000000000"),
        ];
        let event = HoldEvent::from_fields(fields).unwrap();
        assert_eq!(event.kind, HoldEventKind::Expired);
        assert_eq!(event.hold, hold);
        assert_eq!(event.seats, vec![SeatId::new(10), SeatId::new(11)]);
        assert_eq!(event.section, None);
        assert!(HoldEvent::from_fields(fields.into_iter().filter(|(f, _)| *f != "u")).is_none());
    }

    #[test]
    fn a_batch_entry_gives_one_event_per_hold_and_nothing_when_its_count_disagrees() {
        let (a, b) = (
            HoldId::generate(ConcertId::new(5)),
            HoldId::generate(ConcertId::new(5)),
        );
        let (ha, hb) = (format!("{a}|7|2|200|10,11"), format!("{b}|8|1|100|12"));
        let fields = [
            ("t", "held"),
            ("sc", "3"),
            ("se", ""),
            ("x", "1700000000000"),
            ("n", "2"),
            ("h", ha.as_str()),
            ("h", hb.as_str()),
        ];
        let events = HoldEvent::parse_entry(&fields).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].hold, events[1].hold), (a, b));
        assert_eq!(events[0].seats, vec![SeatId::new(10), SeatId::new(11)]);
        assert_eq!(
            (events[1].user, events[1].quantity, events[1].amount),
            (UserId::new(8), 1, 100)
        );
        assert!(events.iter().all(|e| e.kind == HoldEventKind::Held
            && e.schedule == ScheduleId::new(3)
            && e.section.is_none()
            && e.expires_at.timestamp_millis() == 1_700_000_000_000));

        let mut short = fields;
        short[4] = ("n", "3");
        assert!(HoldEvent::parse_entry(&short).is_none());
        let mut garbled = fields;
        garbled[6] = ("h", "not-a-hold|8|1|100|");
        assert!(HoldEvent::parse_entry(&garbled).is_none());
    }

    #[test]
    fn status_precedence_never_moves_a_hold_backwards() {
        use HoldEventKind::*;
        assert!(Held.rank() < Released.rank());
        assert_eq!(Released.rank(), Expired.rank());
        assert!(Expired.rank() < Paid.rank());
    }
}
