//! Every id of the domain, at the bottom of the crate: this module imports nothing of it, so
//! any module (the keyspace, the scripts' callers, the SQL) can name an id without making a
//! circle.
//!
//! Ids are newtypes: past the handler no code sees a raw `i64` or `Uuid`, and a seat id cannot
//! be passed where a section id is wanted. The parsers here read the forms ids take in Redis
//! (a hold's seats as `"10,11"`, a seated hold's section as `""`), so that every reader of a
//! hold record, a claim or a stream entry parses them the same way.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Declares a newtype over a database id, with the conversions every id needs.
macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name($inner);

        impl $name {
            /// Wraps a raw id.
            pub const fn new(id: $inner) -> Self {
                Self(id)
            }
            /// The raw id, for SQL parameters and Redis keys.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_newtype!(
    /// A user's id (Postgres `users.id`).
    UserId(i64)
);
id_newtype!(
    /// A concert's id.
    ConcertId(i64)
);
id_newtype!(
    /// A schedule's (one date of a concert) id.
    ScheduleId(i64)
);
id_newtype!(
    /// A section's id.
    SectionId(i64)
);
id_newtype!(
    /// A seat's id.
    SeatId(i64)
);
id_newtype!(
    /// A reservation's id.
    ReservationId(Uuid)
);
id_newtype!(
    /// A payment's id.
    PaymentId(Uuid)
);

impl SeatId {
    /// Parses the comma-separated seat ids Redis keeps for a hold (`"10,11"`; empty for a
    /// general-admission hold). `None` when one does not parse.
    pub fn parse_list(raw: &str) -> Option<Vec<SeatId>> {
        if raw.is_empty() {
            return Some(Vec::new());
        }
        raw.split(',')
            .map(|id| id.parse().ok().map(SeatId::new))
            .collect()
    }
}

impl SectionId {
    /// Parses the section Redis keeps for a hold: empty for a seated hold, the GA section's id
    /// otherwise. `None` when it does not parse.
    pub fn parse_optional(raw: &str) -> Option<Option<SectionId>> {
        match raw {
            "" => Some(None),
            raw => raw.parse().ok().map(|id| Some(SectionId::new(id))),
        }
    }
}

/// A hold's id: a UUID (version 8) whose first 48 bits are the concert id and whose other 74
/// bits are random.
///
/// Carrying the concert lets `DELETE /holds/{id}` and payment find the hold's Redis slot from
/// the id alone, with no index to write on every hold or to clean up afterwards. The random
/// part keeps ids unguessable; the concert id they reveal is one the holder already knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HoldId(Uuid);

impl HoldId {
    /// A fresh id for a hold in `concert`.
    pub fn generate(concert: ConcertId) -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[..6].copy_from_slice(&concert.get().to_be_bytes()[2..]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Wraps a stored id.
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    /// Parses an id from a request path or from Redis. `None` for anything that is not one of
    /// our ids: it names no hold.
    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::parse_str(raw)
            .ok()
            .filter(|id| id.get_version_num() == 8)
            .map(Self)
    }

    /// The UUID.
    pub fn get(self) -> Uuid {
        self.0
    }

    /// The concert the hold belongs to.
    pub fn concert(self) -> ConcertId {
        let b = self.0.as_bytes();
        ConcertId::new(i64::from_be_bytes([
            0, 0, b[0], b[1], b[2], b[3], b[4], b[5],
        ]))
    }

    /// The key of the Postgres advisory lock that serialises everything that settles this
    /// hold's payment (the saga and the reconciler). Built from random bits only, so holds of
    /// one concert do not share a lock.
    pub fn lock_key(self) -> i64 {
        let b = self.0.as_bytes();
        i64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_id_carries_its_concert_and_parses_back() {
        for concert in [1, 42, 10_001, (1 << 47) - 1] {
            let id = HoldId::generate(ConcertId::new(concert));
            assert_eq!(id.concert(), ConcertId::new(concert));
            assert_eq!(HoldId::parse(&id.to_string()), Some(id));
        }
        assert_ne!(
            HoldId::generate(ConcertId::new(1)),
            HoldId::generate(ConcertId::new(1))
        );
    }

    #[test]
    fn foreign_hold_ids_name_no_hold() {
        for raw in ["nope", "", &Uuid::new_v4().to_string()] {
            assert_eq!(HoldId::parse(raw), None, "{raw}");
        }
    }

    #[test]
    fn seat_lists_and_sections_parse_as_redis_keeps_them() {
        assert_eq!(SeatId::parse_list(""), Some(vec![]));
        assert_eq!(
            SeatId::parse_list("10,11"),
            Some(vec![SeatId::new(10), SeatId::new(11)])
        );
        assert_eq!(SeatId::parse_list("10,x"), None);
        assert_eq!(SectionId::parse_optional(""), Some(None));
        assert_eq!(
            SectionId::parse_optional("9"),
            Some(Some(SectionId::new(9)))
        );
        assert_eq!(SectionId::parse_optional("nine"), None);
    }
}
