//! The integrity audit (`boxoffice-worker audit`): it passes on what the purchase path really
//! wrote, and each of its checks fails on the one corruption it exists to catch. Postgres
//! corruptions are made inside a transaction that is rolled back, so the shared database never
//! sees them; Redis corruptions live in the test's own namespace and are undone.

use std::time::Duration;

use boxoffice_domain::ids::HoldId;
use boxoffice_domain::ids::{ScheduleId, SectionId};
use boxoffice_worker::audit::{self, Outcome, CHECKS};
use fred::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{
    buyers, charge, create_concert, hold_ok, pay_ok, seat_ids, spawn_app_with, spawn_worker,
    test_config, Sale, TestApp,
};

/// Evaluates the Postgres check named `name` (a prefix), then again after `corruption` (SQL
/// statements run in the same transaction), and rolls everything back. Returns the violations
/// the corruption added and the outcome it left.
async fn violations_added_by(app: &TestApp, name: &str, corruption: &[String]) -> (i64, Outcome) {
    let check = CHECKS
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no audit check named {name:?}"));
    let mut tx = app.pg.begin().await.unwrap();
    let before = audit::evaluate(&mut tx, check).await.unwrap();
    for statement in corruption {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    let after = audit::evaluate(&mut tx, check).await.unwrap();
    tx.rollback().await.unwrap();
    (after.violations - before.violations, after)
}

/// Whether a failed check names `row`; a check that found more than it names may name others.
fn names(outcome: &Outcome, row: &str) -> bool {
    outcome.offenders.iter().any(|o| o == row) || outcome.offenders.len() == audit::SAMPLE
}

fn find<'a>(outcomes: &'a [Outcome], name: &str) -> &'a Outcome {
    outcomes
        .iter()
        .find(|o| o.name.starts_with(name))
        .unwrap_or_else(|| panic!("no Redis check named {name:?}"))
}

#[tokio::test]
async fn every_audit_check_passes_on_real_sales_and_fails_on_its_corruption() {
    let config = test_config(&[]);
    let app = spawn_app_with(config.clone()).await;
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 10, Some(20)).await;
    let elsewhere = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let ga = concert.ga_section.unwrap();
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [payer, holder] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    charge(&app, &payer.user, 1_000).await;

    // What the audit sees: a paid seated hold, a paid GA hold, and two live holds.
    let seat_hold = hold_ok(
        &app,
        payer,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let ga_hold = hold_ok(
        &app,
        payer,
        concert.schedule,
        json!({ "sectionId": ga, "quantity": 2 }),
    )
    .await;
    let paid = [
        pay_ok(&app, &payer.user, &seat_hold).await,
        pay_ok(&app, &payer.user, &ga_hold).await,
    ];
    let live = hold_ok(
        &app,
        holder,
        concert.schedule,
        json!({ "seatIds": [seats[2]] }),
    )
    .await;
    hold_ok(
        &app,
        holder,
        concert.schedule,
        json!({ "sectionId": ga, "quantity": 1 }),
    )
    .await;

    // Redis against Postgres: agreement, once the worker has mirrored the live holds.
    let schedules = [(concert.id, ScheduleId::new(concert.schedule))];
    let outcomes = audit::redis_checks(&app.pg, &app.redis, &app.keys, &schedules)
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.violations == 0), "{outcomes:#?}");
    assert_eq!(find(&outcomes, "Redis live holds").checked, 2);
    assert_eq!(find(&outcomes, "Redis seat owners").checked, 3);

    let (c, s) = (concert.id, ScheduleId::new(concert.schedule));
    let owners = app.keys.seat_owners(c, s);
    let counter = app.keys.ga_remaining(c, SectionId::new(ga));
    let tickets = app.keys.user_tickets(c, s);
    let live_id = HoldId::parse(live["holdId"].as_str().unwrap()).unwrap();
    let hold_key = app.keys.hold(c, live_id);
    let redis = &app.redis;
    let once = || audit::compare_inventory(&app.pg, redis, &app.keys, &schedules);

    let _: () = redis
        .hset(&owners, (seats[5].to_string(), "sold"))
        .await
        .unwrap();
    let outcomes = once().await.unwrap();
    let owners_check = find(&outcomes, "Redis seat owners");
    assert_eq!(owners_check.violations, 1);
    assert_eq!(owners_check.offenders, [format!("seat {}", seats[5])]);
    let _: () = redis.hdel(&owners, seats[5].to_string()).await.unwrap();

    let _: () = redis.incr_by(&counter, 1).await.unwrap();
    assert_eq!(
        find(&once().await.unwrap(), "Redis GA places").violations,
        1
    );
    let _: () = redis.decr_by(&counter, 1).await.unwrap();

    let _: () = redis
        .hincrby(&tickets, holder.user.id.to_string(), 1)
        .await
        .unwrap();
    assert_eq!(
        find(&once().await.unwrap(), "Redis ticket counts").violations,
        1
    );
    let _: () = redis
        .hincrby(&tickets, holder.user.id.to_string(), -1)
        .await
        .unwrap();

    let _: () = redis.hset(&hold_key, ("qty", "3")).await.unwrap();
    assert_eq!(
        find(&once().await.unwrap(), "Redis live holds").violations,
        1
    );
    let _: () = redis.hset(&hold_key, ("qty", "1")).await.unwrap();

    let outcomes = once().await.unwrap();
    assert!(outcomes.iter().all(|o| o.violations == 0), "{outcomes:#?}");

    // Postgres: each check catches its own corruption.
    let field = |v: &Value, name: &str| v[name].as_str().unwrap().to_owned();
    let seat_payment = field(&paid[0], "paymentId");
    let ga_reservation = field(&paid[1], "reservationId");
    let seat_hold_id = field(&seat_hold, "holdId");
    let user = payer.user.id;
    let foreign_seat = seat_ids(&app.pg, elsewhere.sections[0]).await[0];
    // Each case: the check, its corruption, and the row its report must name.
    let seat_reservation = field(&paid[0], "reservationId");
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "every confirmed reservation has exactly one payment",
            vec![format!("DELETE FROM payments WHERE id = '{seat_payment}'")],
            format!("reservation {seat_reservation}"),
        ),
        (
            "each payment matches its reservation",
            vec![format!("UPDATE payments SET amount = amount + 1 WHERE id = '{seat_payment}'")],
            format!("payment {seat_payment}"),
        ),
        (
            "sold seats = reservation items",
            vec![format!("DELETE FROM reservation_items WHERE seat_id = {}", seats[1])],
            format!("reservation {seat_reservation}"),
        ),
        (
            "no seat sold twice",
            vec![
                "ALTER TABLE reservation_items DROP CONSTRAINT reservation_items_seat_id_key".into(),
                format!(
                    "INSERT INTO reservation_items (reservation_id, seat_id) VALUES ('{ga_reservation}', {})",
                    seats[0]
                ),
            ],
            format!("seat {}", seats[0]),
        ),
        (
            "every sold seat belongs to its reservation's schedule",
            vec![format!(
                "UPDATE reservation_items SET seat_id = {foreign_seat} WHERE seat_id = {}",
                seats[1]
            )],
            format!("seat {foreign_seat}"),
        ),
        (
            "no GA section over capacity",
            vec![format!("UPDATE sections SET sold = sold + 1 WHERE id = {ga}")],
            format!("section {ga}"),
        ),
        (
            "seated sections",
            vec![format!("UPDATE sections SET sold = 1 WHERE id = {}", concert.sections[0])],
            format!("section {}", concert.sections[0]),
        ),
        (
            "every balance = the sum of its ledger",
            vec![format!("UPDATE point_balances SET balance = balance + 1 WHERE user_id = {user}")],
            format!("user {user}"),
        ),
        (
            "no negative balance",
            vec![
                "ALTER TABLE point_balances DROP CONSTRAINT point_balances_balance_check".into(),
                format!("UPDATE point_balances SET balance = -1 WHERE user_id = {user}"),
            ],
            format!("user {user}"),
        ),
        (
            "each payment is one PAYMENT ledger row",
            vec![format!("UPDATE point_ledger SET delta = delta - 1 WHERE payment_id = '{seat_payment}'")],
            format!("payment {seat_payment}"),
        ),
        (
            "every reservation's hold is mirrored as PAID",
            vec![format!("UPDATE holds SET status = 'HELD' WHERE id = '{seat_hold_id}'")],
            format!("hold {seat_hold_id}"),
        ),
        (
            "every mirrored hold names its user",
            vec![format!("UPDATE holds SET user_id = -1 WHERE id = '{seat_hold_id}'")],
            format!("hold {seat_hold_id}"),
        ),
    ];
    assert_eq!(cases.len(), CHECKS.len(), "every Postgres check has a case");
    for (name, corruption, offender) in &cases {
        let (added, after) = violations_added_by(&app, name, corruption).await;
        assert!(added > 0, "audit check {name:?} missed its corruption");
        // So that an operator can look: the report names the offending row by id.
        assert!(
            names(&after, offender),
            "audit check {name:?} does not name {offender:?}: {after:?}"
        );
    }
    // The rolled-back corruptions left nothing behind.
    let outcomes = audit::redis_checks(&app.pg, &app.redis, &app.keys, &schedules)
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.violations == 0), "{outcomes:#?}");
    tokio::time::timeout(Duration::from_secs(10), worker.stop())
        .await
        .unwrap();
    app.stop().await;
}
