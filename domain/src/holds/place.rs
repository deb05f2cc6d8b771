//! Placing a hold (`POST /schedules/{id}/holds`).

use chrono::{DateTime, Utc};

use super::{
    batch::{Order, Wanted},
    hold::{Footprint, HeldSeat, Hold, HoldRequest},
    inventory,
    store::Store,
};
use crate::{
    concerts::{Schedule, ScheduleSeats, SectionKind},
    ids::{HoldId, UserId},
    Error, Result,
};

/// Places a hold for `user` on `schedule` (whose seats are `seats`).
///
/// Checks the sale window first (403 SALE_NOT_OPEN), prices the request from the catalogue,
/// and takes the seats or places in one atomic Redis step. A schedule used for the first time
/// is loaded from Postgres and the step retried once.
pub async fn place(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
    user: UserId,
    request: HoldRequest,
) -> Result<(Hold, Footprint)> {
    let kind = match request {
        HoldRequest::Seats(_) => "seats",
        HoldRequest::General { .. } => "ga",
    };
    let result = place_inner(store, schedule, seats, user, request).await;
    let outcome = match &result {
        Ok(_) => "held",
        Err(e) => e.code(),
    };
    metrics::counter!("boxoffice_holds_total", "kind" => kind, "outcome" => outcome).increment(1);
    result
}

async fn place_inner(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
    user: UserId,
    request: HoldRequest,
) -> Result<(Hold, Footprint)> {
    schedule.check_sale_open(Utc::now())?;
    // Before the hold, not after: a request dropped in between (the client went away) then
    // leaves a registration and no hold, never a hold the worker does not know to expire.
    store
        .replica
        .registrations
        .keep(store.hot, schedule.concert)
        .await?;
    let id = HoldId::generate(schedule.concert);
    let take = |amount, wanted| {
        store.batches.hold(Order {
            concert: schedule.concert,
            schedule: schedule.id,
            hold: id,
            user,
            amount,
            wanted,
        })
    };
    let (expires_ms, held, quantity, amount, footprint) = match request {
        HoldRequest::Seats(ids) => {
            let chosen = ids
                .iter()
                .map(|id| {
                    seats.get(*id).ok_or_else(|| {
                        Error::InvalidInput(format!("seat {id} is not in this schedule"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let amount = chosen.iter().map(|s| s.price).sum();
            let expires_ms = inventory::loaded_then(store, schedule, || {
                take(amount, Wanted::Seats(ids.clone()))
            })
            .await?;
            let held = chosen
                .iter()
                .map(|s| HeldSeat {
                    seat_id: s.id,
                    seat_no: s.seat_no.clone(),
                })
                .collect();
            let quantity = ids.len() as u32;
            let footprint = Footprint {
                schedule: schedule.id,
                section: None,
                seats: ids,
            };
            (expires_ms, held, quantity, amount, footprint)
        }
        HoldRequest::General { section, quantity } => {
            let section = schedule.section(section)?;
            if section.kind != SectionKind::Ga {
                return Err(Error::InvalidInput(
                    "this section has numbered seats: hold them with seatIds".into(),
                ));
            }
            let amount = section.price * i64::from(quantity);
            let expires_ms = inventory::loaded_then(store, schedule, || {
                take(
                    amount,
                    Wanted::Places {
                        section: section.id,
                        quantity,
                    },
                )
            })
            .await?;
            let footprint = Footprint {
                schedule: schedule.id,
                section: Some(section.id),
                seats: Vec::new(),
            };
            (expires_ms, Vec::new(), quantity, amount, footprint)
        }
    };
    let hold = Hold {
        hold_id: id,
        schedule_id: schedule.id,
        expires_at: DateTime::from_timestamp_millis(expires_ms)
            .ok_or_else(|| anyhow::anyhow!("hold expiry {expires_ms} out of range"))?,
        seats: held,
        quantity,
        amount,
    };
    Ok((hold, footprint))
}
