//! What a hold is: the request that asks for one, the answer that describes it, and the record
//! Redis keeps of it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    ids::{HoldId, ScheduleId, SeatId, SectionId, UserId},
    Error, Result,
};

/// How long an ended (released, expired or paid) hold's record stays in Redis to answer late
/// requests (a payment after expiry gets 410 from it). An hour covers any client retry; after
/// that, the hold's Postgres row gives the same answer.
pub const ENDED_HOLD_RETENTION_MS: i64 = 3_600_000;

/// What a client asks to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRequest {
    /// These numbered seats, all or none.
    Seats(Vec<SeatId>),
    /// `quantity` places of a general-admission section.
    General { section: SectionId, quantity: u32 },
}

impl HoldRequest {
    /// The most seats or places one request may name. The ticket limit is usually far lower;
    /// this only bounds the work one request can ask of a script.
    pub const MAX_ITEMS: usize = 50;

    /// Validates the two body shapes of `POST /holds`: `{seatIds}` or `{sectionId, quantity}`.
    pub fn parse(
        seat_ids: Option<Vec<i64>>,
        section_id: Option<i64>,
        quantity: Option<i64>,
    ) -> Result<Self> {
        let invalid = |m: &str| Error::InvalidInput(m.to_owned());
        match (seat_ids, section_id, quantity) {
            (Some(ids), None, None) => {
                if ids.is_empty() || ids.len() > Self::MAX_ITEMS {
                    return Err(Error::InvalidInput(format!(
                        "seatIds must name 1 to {} seats",
                        Self::MAX_ITEMS
                    )));
                }
                let mut seen = HashSet::with_capacity(ids.len());
                if !ids.iter().all(|id| *id > 0 && seen.insert(*id)) {
                    return Err(invalid("seatIds must be distinct positive ids"));
                }
                Ok(Self::Seats(ids.into_iter().map(SeatId::new).collect()))
            }
            (None, Some(section), Some(quantity)) => {
                let quantity = u32::try_from(quantity)
                    .ok()
                    .filter(|q| (1..=Self::MAX_ITEMS as u32).contains(q))
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "quantity must be an integer from 1 to {}",
                            Self::MAX_ITEMS
                        ))
                    })?;
                if section <= 0 {
                    return Err(invalid("sectionId must be a positive id"));
                }
                Ok(Self::General {
                    section: SectionId::new(section),
                    quantity,
                })
            }
            _ => Err(invalid(
                "send either {\"seatIds\": [...]} or {\"sectionId\": ..., \"quantity\": ...}",
            )),
        }
    }
}

/// A seat of a hold, as the client sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeldSeat {
    pub seat_id: SeatId,
    pub seat_no: String,
}

/// A placed hold (`201` of `POST /holds`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub hold_id: HoldId,
    pub schedule_id: ScheduleId,
    pub expires_at: DateTime<Utc>,
    pub seats: Vec<HeldSeat>,
    pub quantity: u32,
    pub amount: i64,
}

/// Where a change to holds touched the inventory, so a replica can evict exactly the cached
/// views it made stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub schedule: ScheduleId,
    /// The general-admission section, for a GA hold.
    pub section: Option<SectionId>,
    /// The numbered seats, for a seat hold.
    pub seats: Vec<SeatId>,
}

/// Where a hold lives, as its Redis record says: enough to name every key a script about it
/// touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    pub user: UserId,
    pub schedule: ScheduleId,
    pub section: Option<SectionId>,
    pub seats: Vec<SeatId>,
}

impl HoldRecord {
    /// The inventory this hold touches.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            schedule: self.schedule,
            section: self.section,
            seats: self.seats.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_requests_take_exactly_one_shape() {
        assert_eq!(
            HoldRequest::parse(Some(vec![3, 4]), None, None).unwrap(),
            HoldRequest::Seats(vec![SeatId::new(3), SeatId::new(4)])
        );
        assert_eq!(
            HoldRequest::parse(None, Some(9), Some(2)).unwrap(),
            HoldRequest::General {
                section: SectionId::new(9),
                quantity: 2
            }
        );
        for (seats, section, quantity) in [
            (None, None, None),
            (Some(vec![]), None, None),
            (Some(vec![1, 1]), None, None),
            (Some(vec![-1]), None, None),
            (Some(vec![1]), Some(2), Some(1)),
            (None, Some(2), None),
            (None, Some(2), Some(0)),
            (None, Some(2), Some(-1)),
            (None, Some(2), Some(51)),
        ] {
            assert!(
                matches!(
                    HoldRequest::parse(seats.clone(), section, quantity),
                    Err(Error::InvalidInput(_))
                ),
                "{seats:?} {section:?} {quantity:?}"
            );
        }
    }
}
