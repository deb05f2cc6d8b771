//! Concerts, their schedules (dates), sections and seats, as Postgres holds them.
//!
//! A concert is listed while its sale has not closed. Its status is derived from the clock and
//! the sale window rather than stored, so it can never be stale.

pub mod pg;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, Result};

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
