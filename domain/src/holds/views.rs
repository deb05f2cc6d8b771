//! The read side of the inventory: a section's seat map and a schedule's sections with what is
//! left, each merged from the static catalogue and the live state in Redis.

use std::collections::HashMap;

use serde::Serialize;

use super::{inventory, redis, store::Store};
use crate::{
    concerts::{Schedule, ScheduleSeats, Section, SectionKind},
    ids::{SeatId, SectionId},
    Result,
};

/// A seat's state in the seat map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
}

impl SeatStatus {
    /// The status of a seat from its `seat_owners` value.
    pub fn from_owner(owner: Option<&str>) -> Self {
        match owner {
            None => Self::Available,
            Some("sold") => Self::Sold,
            Some(_) => Self::Held,
        }
    }
}

/// One seat of the seat map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatView {
    pub seat_id: SeatId,
    pub seat_no: String,
    pub price: i64,
    pub status: SeatStatus,
}

/// `GET /schedules/{id}/seats?section=ID`.
#[derive(Debug, Clone, Serialize)]
pub struct SeatMap {
    pub items: Vec<SeatView>,
}

/// One section of `GET /schedules/{id}/sections`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SectionView {
    #[serde(flatten)]
    pub section: Section,
    /// Tickets neither held nor sold.
    pub remaining: i64,
}

/// `GET /schedules/{id}/sections`.
#[derive(Debug, Clone, Serialize)]
pub struct Sections {
    pub items: Vec<SectionView>,
}

/// The seat map of one section: the static seats merged with their live status in Redis.
pub async fn seat_map(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
    section: SectionId,
) -> Result<SeatMap> {
    let section = schedule.section(section)?;
    let in_section = seats.in_section(section.id);
    let ids: Vec<SeatId> = in_section.iter().map(|s| s.id).collect();
    let owners = inventory::loaded_then(store, schedule, || {
        redis::seat_owners(store.hot, schedule, &ids)
    })
    .await?;
    Ok(SeatMap {
        items: in_section
            .iter()
            .zip(owners)
            .map(|(seat, owner)| SeatView {
                seat_id: seat.id,
                seat_no: seat.seat_no.clone(),
                price: seat.price,
                status: SeatStatus::from_owner(owner.as_deref()),
            })
            .collect(),
    })
}

/// The sections of a schedule with what is left in each.
///
/// A seated section's `remaining` is its capacity less its held and sold seats (one `HGETALL`
/// of the schedule's owners); a GA section's is its Redis counter, which already counts holds.
pub async fn sections(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
) -> Result<Sections> {
    inventory::ensure_loaded(store, schedule).await?;
    let taken = redis::taken(store.hot, schedule).await?;
    let mut taken_by_section: HashMap<SectionId, i64> = HashMap::new();
    for seat in &taken.seats {
        if let Some(seat) = seats.get(*seat) {
            *taken_by_section.entry(seat.section).or_default() += 1;
        }
    }
    let items = schedule
        .sections
        .iter()
        .map(|section| {
            let remaining = match section.kind {
                SectionKind::Ga => taken.ga.get(&section.id).copied().unwrap_or(0),
                SectionKind::Seated => {
                    i64::from(section.capacity)
                        - taken_by_section.get(&section.id).copied().unwrap_or(0)
                }
            };
            SectionView {
                section: section.clone(),
                remaining: remaining.max(0),
            }
        })
        .collect();
    Ok(Sections { items })
}
