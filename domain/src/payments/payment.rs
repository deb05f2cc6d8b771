//! What a payment gives back: the payment itself, stored with its idempotency key, and the
//! reservations it made.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    holds::{Footprint, HeldSeat},
    ids::{ConcertId, PaymentId, ReservationId, ScheduleId},
};

/// A completed payment (`201` of `POST /holds/{id}/payment`); stored verbatim with its
/// idempotency key, so a retry gets the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub reservation_id: ReservationId,
    pub payment_id: PaymentId,
    pub amount: i64,
    /// The balance right after this payment.
    pub balance: i64,
}

/// What a payment did (the saga's answer).
#[derive(Debug, Clone)]
pub struct Paid {
    pub payment: Payment,
    /// The concert whose ACTIVE session the payment ended.
    pub concert: ConcertId,
    /// The inventory it changed (`None` for a replay, which changed nothing).
    pub footprint: Option<Footprint>,
}

/// One confirmed reservation of `GET /me/reservations`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub seats: Vec<HeldSeat>,
    pub quantity: i32,
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
}

/// `GET /me/reservations`.
#[derive(Debug, Clone, Serialize)]
pub struct Reservations {
    pub items: Vec<Reservation>,
}
