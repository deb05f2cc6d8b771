//! The outbox of confirmed reservations and its delivery to a webhook.
//!
//! The payment transaction writes one outbox row per reservation, so a notification exists if
//! and only if the payment committed. The worker delivers rows off the request path, at least
//! once: a row is leased before its POST and marked delivered after a 2xx, so a worker that
//! dies mid-delivery leaves it to be sent again after the lease. Receivers deduplicate by the
//! `reservationId` of the body (also sent as `Idempotency-Key`). Failures are retried with
//! exponential backoff up to a cap.

pub mod pg;

use std::time::Duration;

/// The outbox topic of a confirmed reservation.
pub const RESERVATION_CONFIRMED: &str = "reservation.confirmed";

/// One outbox row due for delivery.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: i64,
    pub topic: String,
    pub payload: serde_json::Value,
    /// Failed attempts so far.
    pub attempts: i32,
}

impl Notification {
    /// The key a receiver deduplicates on: the reservation, or the row for other topics.
    pub fn dedup_key(&self) -> String {
        self.payload["reservationId"]
            .as_str()
            .map_or_else(|| format!("outbox-{}", self.id), str::to_owned)
    }
}

/// How long to wait after the `attempts`-th failure: `base * 2^(attempts-1)`, at most `cap`.
pub fn backoff(attempts: i32, base: Duration, cap: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    base.saturating_mul(1 << exponent).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        let waits: Vec<u128> = (1..=8).map(|n| backoff(n, base, cap).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(i32::MAX, base, cap), cap);
        assert_eq!(backoff(0, base, cap), base);
    }

    #[test]
    fn receivers_deduplicate_by_reservation() {
        let n = Notification {
            id: 7,
            topic: RESERVATION_CONFIRMED.into(),
            payload: serde_json::json!({"reservationId": "r-1"}),
            attempts: 0,
        };
        assert_eq!(n.dedup_key(), "r-1");
    }
}
