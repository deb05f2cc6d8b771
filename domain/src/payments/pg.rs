//! The Postgres steps of the payment saga (gateway, deadpool) and of its reconciler (worker,
//! sqlx), and the reservation list.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::{error::SqlState, types::ToSql};
use uuid::Uuid;

use super::payment::{Payment, Reservation, Reservations};
use crate::{
    holds::{Claim, HeldSeat},
    ids::{HoldId, PaymentId, ReservationId, ScheduleId, SeatId, UserId},
    points::{request_fingerprint, IdempotencyKey},
    Dependency, Error, Result,
};

/// The idempotency-key operation name of payments.
const PAY: &str = "holds.pay";

/// How a batch's payment opened.
pub enum Opened {
    /// The key is new: this transaction claimed it, and the payment goes on.
    New,
    /// The key was used before for this hold: its stored answer.
    Replay(Payment),
}

/// Opens a batch of payments of distinct users (so a user id names its payment), ordered by
/// hold id: takes every hold's advisory lock in that order (so two batches never wait for
/// each other's locks in a cycle), then claims every key in one statement, and reads the
/// stored answers of keys used before. Answers one result per payment, in order. A payment
/// alone is a batch of one.
///
/// A concurrent request with the same key blocks on the key's primary key until this
/// transaction ends, then finds the stored response (or, if this one rolled back, does the
/// work itself). The advisory lock serialises everything that settles the hold's payment:
/// other payments of it with other keys, and the reconciler, which only acts on claims whose
/// lock it can take, so it never settles a payment still in flight.
pub async fn open(
    tx: &Transaction<'_>,
    payments: &[(UserId, HoldId, &IdempotencyKey)],
) -> Result<Vec<Result<Opened>>> {
    let locks: Vec<i64> = payments.iter().map(|(_, h, _)| h.lock_key()).collect();
    let users: Vec<i64> = payments.iter().map(|(u, _, _)| u.get()).collect();
    let keys: Vec<&str> = payments.iter().map(|(_, _, k)| k.as_str()).collect();
    let fingerprints: Vec<String> = payments
        .iter()
        .map(|(_, h, _)| request_fingerprint(&[&h.to_string()]))
        .collect();
    let (lock, claim) = futures::try_join!(
        tx.prepare_cached(
            "SELECT count(pg_advisory_xact_lock(l)) FROM unnest($1::bigint[]) AS l"
        ),
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (user_id, operation, key, request_hash, status_code, response) \
             SELECT u, $1, k, f, 0, 'null' FROM unnest($2::bigint[], $3::text[], $4::text[]) AS t(u, k, f) \
             ON CONFLICT DO NOTHING RETURNING user_id",
        ),
    )?;
    // Pipelined on the connection: the locks are taken before any key is claimed.
    let lock_params: [&(dyn ToSql + Sync); 1] = [&locks];
    let claim_params: [&(dyn ToSql + Sync); 4] = [&PAY, &users, &keys, &fingerprints];
    let (_, claimed) = futures::try_join!(
        tx.query_one(&lock, &lock_params),
        tx.query(&claim, &claim_params),
    )?;
    let new: HashSet<i64> = claimed.iter().map(|r| r.get(0)).collect();
    let used: Vec<usize> = (0..payments.len())
        .filter(|i| !new.contains(&users[*i]))
        .collect();
    let mut stored: HashMap<i64, (String, serde_json::Value)> = HashMap::new();
    if !used.is_empty() {
        let rows = tx
            .query(
                "SELECT i.user_id, i.request_hash, i.response FROM idempotency_keys i \
                 JOIN unnest($2::bigint[], $3::text[]) AS t(u, k) ON i.user_id = t.u AND i.key = t.k \
                 WHERE i.operation = $1",
                &[
                    &PAY,
                    &used.iter().map(|i| users[*i]).collect::<Vec<_>>(),
                    &used.iter().map(|i| keys[*i]).collect::<Vec<_>>(),
                ],
            )
            .await?;
        stored = rows
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
    }
    Ok((0..payments.len())
        .map(|i| {
            if new.contains(&users[i]) {
                return Ok(Opened::New);
            }
            let (hash, response) = stored
                .remove(&users[i])
                .ok_or_else(|| anyhow::anyhow!("idempotency key neither new nor stored"))?;
            if hash != fingerprints[i] {
                return Err(Error::IdempotencyKeyReused);
            }
            let payment = serde_json::from_value(response)
                .map_err(|e| anyhow::anyhow!("stored payment response is unreadable: {e}"))?;
            Ok(Opened::Replay(payment))
        })
        .collect())
}

/// One claimed payment of a batch, for [`record`].
pub struct Recording<'a> {
    pub user: UserId,
    pub hold: HoldId,
    pub key: &'a IdempotencyKey,
    pub claim: &'a Claim,
}

/// Locks the GA sections that [`record`] will update, in id order, so that two batches
/// paying into the same GA sections never wait for each other's rows in a cycle. Without it
/// the statement updated them in its join's order, and two such batches could deadlock
/// (Postgres ends that after a second, and the batch falls back). One section needs no order.
/// `FOR NO KEY UPDATE` is the lock the update takes anyway; it does not block the foreign-key
/// checks that share-lock the same rows.
///
/// Balances are not locked ahead: a cycle on them needs two users each paying twice at the
/// same moment in two batches, and costs a fallback, while locking them would add a statement
/// to every batch.
pub async fn lock_sections(tx: &Transaction<'_>, batch: &[Recording<'_>]) -> Result<()> {
    let mut sections: Vec<i64> = batch
        .iter()
        .filter_map(|r| r.claim.record.section.map(|s| s.get()))
        .collect();
    sections.sort_unstable();
    sections.dedup();
    if sections.len() < 2 {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM sections WHERE id = ANY($1) \
             ORDER BY id FOR NO KEY UPDATE) s",
        )
        .await?;
    tx.query_one(&stmt, &[&sections]).await?;
    Ok(())
}

/// Records a batch of claimed payments of distinct users in one statement. For each payment,
/// hanging off its own debit (guarded by the balance): ledger row, the hold's row as PAID
/// (the sink may not have written it yet), reservation, one reservation item per seat
/// (UNIQUE: a seat is sold once), a GA section's sold count (CHECK: never past capacity),
/// payment (hold UNIQUE), outbox row and the stored response for the idempotency key.
/// Returns the payments recorded, by hold; a payment missing from the answer was short of
/// points (or its user has no balance) and wrote nothing. An error (a constraint, a lock
/// conflict) fails the whole statement; a batch then pays each payment alone, as a batch of
/// one, which answers that payment's own contract error.
///
/// `holds` rows are written in hold-id order, the sink's order, so that the two never wait for
/// each other's rows in a cycle; the GA sections it updates are locked in order beforehand
/// ([`lock_sections`]).
///
/// Seated sections keep `sold` at 0: their seats sold are their reservation items (the
/// UNIQUE is their guarantee), and counting them in the section's row would make every
/// payment in a popular section queue on that one row lock until commit. A GA section has no
/// other guarantee than its CHECK, so its row is the price of that section's payments.
pub async fn record(
    tx: &Transaction<'_>,
    batch: &[Recording<'_>],
) -> Result<HashMap<HoldId, Payment>> {
    if batch.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = tx
        .prepare_cached(
            "WITH input AS ( \
                SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::bigint[], \
                                     $5::bigint[], $6::int[], $7::timestamptz[], $8::uuid[], \
                                     $9::uuid[], $10::text[]) \
                    AS t(user_id, amount, hold_id, schedule_id, section_id, quantity, \
                         expires_at, reservation_id, payment_id, key) \
             ), seat AS ( \
                SELECT * FROM unnest($11::uuid[], $12::bigint[]) WITH ORDINALITY AS s(hold_id, seat_id, n) \
             ), debit AS ( \
                UPDATE point_balances b SET balance = b.balance - i.amount, updated_at = now() \
                FROM input i WHERE b.user_id = i.user_id AND b.balance >= i.amount \
                RETURNING b.user_id, b.balance \
             ), paid AS ( \
                SELECT i.*, d.balance FROM input i JOIN debit d USING (user_id) \
             ), held AS ( \
                INSERT INTO holds (id, user_id, schedule_id, section_id, quantity, amount, status, expires_at) \
                SELECT hold_id, user_id, schedule_id, section_id, quantity, amount, 'PAID', expires_at \
                FROM paid ORDER BY hold_id \
                ON CONFLICT (id) DO UPDATE SET status = 'PAID', updated_at = now() RETURNING id \
             ), held_seats AS ( \
                INSERT INTO hold_seats (hold_id, seat_id) \
                SELECT s.hold_id, s.seat_id FROM seat s JOIN held h ON h.id = s.hold_id \
                ON CONFLICT DO NOTHING \
             ), ledger AS ( \
                INSERT INTO point_ledger (user_id, delta, reason, payment_id) \
                SELECT user_id, -amount, 'PAYMENT', payment_id FROM paid \
             ), reservation AS ( \
                INSERT INTO reservations (id, hold_id, user_id, schedule_id, section_id, quantity, amount) \
                SELECT reservation_id, hold_id, user_id, schedule_id, section_id, quantity, amount \
                FROM paid RETURNING id, paid_at \
             ), items AS ( \
                INSERT INTO reservation_items (reservation_id, seat_id) \
                SELECT p.reservation_id, s.seat_id FROM paid p JOIN seat s ON s.hold_id = p.hold_id \
             ), sold AS ( \
                UPDATE sections SET sold = sections.sold + q.n \
                FROM (SELECT section_id, sum(quantity) AS n FROM paid \
                      WHERE section_id IS NOT NULL GROUP BY section_id) q \
                WHERE sections.id = q.section_id \
             ), payment AS ( \
                INSERT INTO payments (id, hold_id, reservation_id, user_id, amount) \
                SELECT payment_id, hold_id, reservation_id, user_id, amount FROM paid \
             ), outbox_row AS ( \
                INSERT INTO outbox (topic, payload) \
                SELECT 'reservation.confirmed', jsonb_build_object( \
                    'reservationId', p.reservation_id, 'paymentId', p.payment_id, \
                    'holdId', p.hold_id, 'userId', p.user_id, 'scheduleId', p.schedule_id, \
                    'seats', COALESCE((SELECT array_agg(s.seat_id ORDER BY s.n) FROM seat s \
                                       WHERE s.hold_id = p.hold_id), '{}'), \
                    'quantity', p.quantity, 'amount', p.amount, 'paidAt', r.paid_at) \
                FROM paid p JOIN reservation r ON r.id = p.reservation_id \
             ), key_row AS ( \
                UPDATE idempotency_keys k SET status_code = 201, response = jsonb_build_object( \
                    'reservationId', p.reservation_id, 'paymentId', p.payment_id, \
                    'amount', p.amount, 'balance', p.balance) \
                FROM paid p WHERE k.user_id = p.user_id AND k.operation = $13 AND k.key = p.key \
             ) \
             SELECT hold_id, reservation_id, payment_id, amount, balance FROM paid",
        )
        .await?;
    let n = batch.len();
    let (mut users, mut amounts, mut holds, mut schedules) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut sections, mut quantities, mut expiries, mut keys) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut seat_holds, mut seats) = (Vec::new(), Vec::new());
    for r in batch {
        users.push(r.user.get());
        amounts.push(r.claim.amount);
        holds.push(r.hold.get());
        schedules.push(r.claim.record.schedule.get());
        sections.push(r.claim.record.section.map(|s| s.get()));
        quantities.push(r.claim.quantity);
        expiries.push(r.claim.expires_at);
        keys.push(r.key.as_str());
        for seat in &r.claim.record.seats {
            seat_holds.push(r.hold.get());
            seats.push(seat.get());
        }
    }
    let reservations: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let payments: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let rows = tx
        .query(
            &stmt,
            &[
                &users,
                &amounts,
                &holds,
                &schedules,
                &sections,
                &quantities,
                &expiries,
                &reservations,
                &payments,
                &keys,
                &seat_holds,
                &seats,
                &PAY,
            ],
        )
        .await
        .map_err(constraint_error)?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                HoldId::new(row.get(0)),
                Payment {
                    reservation_id: ReservationId::new(row.get(1)),
                    payment_id: PaymentId::new(row.get(2)),
                    amount: row.get(3),
                    balance: row.get(4),
                },
            )
        })
        .collect())
}

/// The balances of `users` (those that have one).
pub async fn balances(
    tx: &Transaction<'_>,
    users: impl Iterator<Item = UserId>,
) -> Result<HashMap<UserId, i64>> {
    let users: Vec<i64> = users.map(UserId::get).collect();
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT user_id, balance FROM point_balances WHERE user_id = ANY($1)",
            &[&users],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (UserId::new(r.get(0)), r.get(1)))
        .collect())
}

/// Deletes the payment keys [`open`] claimed for payments the batch refused, so that a retry
/// with the same key tries again (as a single payment's rolled-back transaction allows).
pub async fn release_keys(tx: &Transaction<'_>, keys: &[(UserId, &IdempotencyKey)]) -> Result<()> {
    let (users, keys): (Vec<i64>, Vec<&str>) =
        keys.iter().map(|(u, k)| (u.get(), k.as_str())).unzip();
    if users.is_empty() {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM idempotency_keys WHERE operation = $1 \
         AND (user_id, key) IN (SELECT * FROM unnest($2::bigint[], $3::text[]))",
        &[&PAY, &users, &keys],
    )
    .await?;
    Ok(())
}

/// Maps the constraints that are the last line of invariant 1 to their contract errors; only
/// reachable when Redis lost data and sold from a rebuilt inventory. Lock conflicts are
/// dependency failures a client may retry.
fn constraint_error(e: tokio_postgres::Error) -> Error {
    let constraint = e
        .as_db_error()
        .and_then(|db| db.constraint())
        .unwrap_or_default()
        .to_owned();
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
            if constraint.starts_with("reservation_items") {
                Error::SeatUnavailable
            } else {
                Error::HoldAlreadyPaid
            }
        }
        Some(code) if *code == SqlState::CHECK_VIOLATION && constraint.starts_with("sections") => {
            Error::SoldOut
        }
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            Error::unavailable(Dependency::Postgres, e)
        }
        _ => e.into(),
    }
}

/// The caller's confirmed reservations, newest first (at most the latest 100).
pub async fn reservations(pool: &Pool, user: UserId) -> Result<Reservations> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT r.id, r.schedule_id, r.quantity, r.amount, r.paid_at, \
                    COALESCE(array_agg(ri.seat_id ORDER BY ri.seat_id) \
                             FILTER (WHERE ri.seat_id IS NOT NULL), '{}'), \
                    COALESCE(array_agg(s.seat_no ORDER BY ri.seat_id) \
                             FILTER (WHERE ri.seat_id IS NOT NULL), '{}') \
             FROM reservations r \
             LEFT JOIN reservation_items ri ON ri.reservation_id = r.id \
             LEFT JOIN seats s ON s.id = ri.seat_id \
             WHERE r.user_id = $1 \
             GROUP BY r.id ORDER BY r.paid_at DESC, r.id DESC LIMIT 100",
        )
        .await?;
    let rows = client.query(&stmt, &[&user.get()]).await?;
    Ok(Reservations {
        items: rows
            .iter()
            .map(|r| {
                let ids: Vec<i64> = r.get(5);
                let numbers: Vec<String> = r.get(6);
                Reservation {
                    reservation_id: ReservationId::new(r.get(0)),
                    schedule_id: ScheduleId::new(r.get(1)),
                    quantity: r.get(2),
                    amount: r.get(3),
                    paid_at: r.get(4),
                    seats: ids
                        .into_iter()
                        .zip(numbers)
                        .map(|(id, seat_no)| HeldSeat {
                            seat_id: SeatId::new(id),
                            seat_no,
                        })
                        .collect(),
                }
            })
            .collect(),
    })
}

/// What Postgres says of a stale claim, as the reconciler sees it inside its own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The saga still holds the hold's lock: the payment is in flight; leave it.
    InFlight,
    /// Postgres has the payment, made by this user (whose ACTIVE session it ends).
    Paid(UserId),
    /// Postgres has no payment for the hold.
    Unpaid,
}

/// The reconciler's view of one claim, inside its own transaction: [`Settle::InFlight`] while
/// the saga still holds the hold's lock, otherwise whether Postgres has a payment for the hold
/// and whose. The lock is held until `tx` ends, so no saga can commit a payment of this hold
/// while the reconciler acts on the answer.
pub async fn settle_check(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    hold: HoldId,
) -> Result<Settle> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(hold.lock_key())
        .fetch_one(&mut **tx)
        .await?;
    if !locked {
        return Ok(Settle::InFlight);
    }
    // `payments.hold_id` is UNIQUE: one row at most.
    let payer: Option<i64> = sqlx::query_scalar("SELECT user_id FROM payments WHERE hold_id = $1")
        .bind(hold.get())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(payer.map_or(Settle::Unpaid, |user| Settle::Paid(UserId::new(user))))
}
