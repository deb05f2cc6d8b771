//! Concerts, their schedules (dates), sections and seats, as Postgres holds them.
//!
//! A concert is listed while its sale has not closed. Its status is derived from the clock and
//! the sale window rather than stored, so it can never be stale.

pub mod pg;

use std::{collections::HashMap, ops::Range};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    ids::{ConcertId, ScheduleId, SeatId, SectionId},
    Error, Result,
};

/// Where a concert's sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConcertStatus {
    Upcoming,
    OnSale,
    SoldOut,
    Closed,
}

impl ConcertStatus {
    /// The status at `now` of a concert with this sale window.
    pub fn at(
        now: DateTime<Utc>,
        opens: DateTime<Utc>,
        closes: DateTime<Utc>,
        sold_out: bool,
    ) -> Self {
        if now >= closes {
            ConcertStatus::Closed
        } else if sold_out {
            ConcertStatus::SoldOut
        } else if now < opens {
            ConcertStatus::Upcoming
        } else {
            ConcertStatus::OnSale
        }
    }
}

/// A concert as the list shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Concert {
    pub concert_id: ConcertId,
    pub title: String,
    pub venue: String,
    pub status: ConcertStatus,
    pub sale_opens_at: DateTime<Utc>,
    pub sale_closes_at: DateTime<Utc>,
}

/// One date of a concert.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRef {
    pub schedule_id: ScheduleId,
    pub starts_at: DateTime<Utc>,
}

/// A concert with its dates.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcertDetail {
    #[serde(flatten)]
    pub concert: Concert,
    pub schedules: Vec<ScheduleRef>,
}

/// One page of the concert list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcertPage {
    pub items: Vec<Concert>,
    pub next_cursor: Option<String>,
}

/// A validated page request: an opaque cursor (the last id seen) and a page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: ConcertId,
    pub limit: i64,
}

impl PageRequest {
    /// Page size when the client names none.
    pub const DEFAULT_LIMIT: i64 = 20;
    /// Largest page; keeps one request's work bounded.
    pub const MAX_LIMIT: i64 = 100;

    /// Parses the `cursor` and `limit` query parameters.
    pub fn parse(cursor: Option<&str>, limit: Option<&str>) -> Result<Self> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "limit must be an integer from 1 to {}",
                        Self::MAX_LIMIT
                    ))
                })?,
        };
        let after = match cursor {
            None | Some("") => ConcertId::new(0),
            Some(raw) => decode_cursor(raw).ok_or_else(|| {
                Error::InvalidInput("cursor is not one this server issued".into())
            })?,
        };
        Ok(Self { after, limit })
    }
}

/// The opaque cursor that resumes a listing after `last`.
pub fn encode_cursor(last: ConcertId) -> String {
    URL_SAFE_NO_PAD.encode(format!("c:{}", last.get()))
}

fn decode_cursor(raw: &str) -> Option<ConcertId> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let id = text.strip_prefix("c:")?.parse::<i64>().ok()?;
    (id >= 0).then(|| ConcertId::new(id))
}

// --- the catalogue of one schedule, as the purchase path reads it ---------------------------

/// Whether a section sells numbered seats or general-admission places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SectionKind {
    Seated,
    Ga,
}

/// The static facts of one section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    #[serde(rename = "sectionId")]
    pub id: SectionId,
    pub name: String,
    pub kind: SectionKind,
    pub price: i64,
    pub capacity: i32,
}

/// One date of a concert with what selling from it needs: its concert, its own sale window
/// (seed 000: tickets of one event may open at different times) and its sections.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: ScheduleId,
    pub concert: ConcertId,
    pub starts_at: DateTime<Utc>,
    pub sale_opens_at: DateTime<Utc>,
    pub sale_closes_at: DateTime<Utc>,
    pub sections: Vec<Section>,
}

impl Schedule {
    /// Refuses with `SaleNotOpen` outside the schedule's sale window.
    pub fn check_sale_open(&self, now: DateTime<Utc>) -> Result<()> {
        if self.sale_opens_at <= now && now < self.sale_closes_at {
            Ok(())
        } else {
            Err(Error::SaleNotOpen)
        }
    }

    /// The section `id` of this schedule.
    pub fn section(&self, id: SectionId) -> Result<&Section> {
        self.sections
            .iter()
            .find(|s| s.id == id)
            .ok_or(Error::SectionNotFound)
    }
}

/// The static facts of one seat.
#[derive(Debug, Clone)]
pub struct Seat {
    pub id: SeatId,
    pub section: SectionId,
    pub seat_no: String,
    pub price: i64,
}

/// Every seat of a schedule, grouped by section in seat-id order. Seats never change once
/// created, so this is cached for long.
#[derive(Debug, Default)]
pub struct ScheduleSeats {
    seats: Vec<Seat>,
    index: HashMap<SeatId, usize>,
    sections: HashMap<SectionId, Range<usize>>,
}

impl ScheduleSeats {
    /// Builds the index from seats sorted by (section, id).
    pub fn new(seats: Vec<Seat>) -> Self {
        let mut index = HashMap::with_capacity(seats.len());
        let mut sections: HashMap<SectionId, Range<usize>> = HashMap::new();
        for (i, seat) in seats.iter().enumerate() {
            index.insert(seat.id, i);
            sections
                .entry(seat.section)
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
        }
        Self {
            seats,
            index,
            sections,
        }
    }

    /// The seat `id`, if it belongs to this schedule.
    pub fn get(&self, id: SeatId) -> Option<&Seat> {
        self.index.get(&id).map(|&i| &self.seats[i])
    }

    /// The seats of `section` (empty for a GA or unknown section).
    pub fn in_section(&self, section: SectionId) -> &[Seat] {
        self.sections
            .get(&section)
            .map_or(&[][..], |r| &self.seats[r.clone()])
    }

    /// How many seats the schedule has, for cache weighing.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Whether the schedule has no numbered seats.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }
}

/// A date of a concert that can still be bought.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableDate {
    pub schedule_id: ScheduleId,
    pub starts_at: DateTime<Utc>,
    /// Tickets not yet sold (seats on hold count as available: an unpaid hold returns them).
    pub available_seats: i64,
}

/// `GET /concerts/{id}/schedules`.
#[derive(Debug, Clone, Serialize)]
pub struct AvailableDates {
    pub items: Vec<AvailableDate>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn status_follows_the_sale_window() {
        let now = Utc::now();
        let h = Duration::hours(1);
        assert_eq!(
            ConcertStatus::at(now, now + h, now + h * 2, false),
            ConcertStatus::Upcoming
        );
        assert_eq!(
            ConcertStatus::at(now, now - h, now + h, false),
            ConcertStatus::OnSale
        );
        assert_eq!(
            ConcertStatus::at(now, now - h, now + h, true),
            ConcertStatus::SoldOut
        );
        assert_eq!(
            ConcertStatus::at(now, now - h * 2, now - h, true),
            ConcertStatus::Closed
        );
    }

    #[test]
    fn a_schedule_sells_only_inside_its_window() {
        let now = Utc::now();
        let h = Duration::hours(1);
        let schedule = |opens, closes| Schedule {
            id: ScheduleId::new(1),
            concert: ConcertId::new(1),
            starts_at: now,
            sale_opens_at: opens,
            sale_closes_at: closes,
            sections: vec![],
        };
        assert!(schedule(now - h, now + h).check_sale_open(now).is_ok());
        assert!(matches!(
            schedule(now + h, now + h * 2).check_sale_open(now),
            Err(Error::SaleNotOpen)
        ));
        assert!(matches!(
            schedule(now - h * 2, now - h).check_sale_open(now),
            Err(Error::SaleNotOpen)
        ));
    }

    #[test]
    fn seats_are_indexed_by_id_and_section() {
        let seat = |id, section| Seat {
            id: SeatId::new(id),
            section: SectionId::new(section),
            seat_no: format!("N{id}"),
            price: 10,
        };
        let seats = ScheduleSeats::new(vec![seat(1, 7), seat(2, 7), seat(3, 8)]);
        assert_eq!(seats.in_section(SectionId::new(7)).len(), 2);
        assert_eq!(seats.in_section(SectionId::new(8))[0].id, SeatId::new(3));
        assert!(seats.in_section(SectionId::new(9)).is_empty());
        assert_eq!(
            seats.get(SeatId::new(2)).map(|s| s.section),
            Some(SectionId::new(7))
        );
        assert!(seats.get(SeatId::new(4)).is_none());
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let page = PageRequest::parse(Some(&encode_cursor(ConcertId::new(77))), Some("5")).unwrap();
        assert_eq!(
            page,
            PageRequest {
                after: ConcertId::new(77),
                limit: 5
            }
        );
        assert!(PageRequest::parse(Some("not-a-cursor"), None).is_err());
        assert!(PageRequest::parse(None, Some("0")).is_err());
        assert!(PageRequest::parse(None, Some("101")).is_err());
        assert!(PageRequest::parse(None, Some("ten")).is_err());
    }
}
