//! The integrity audit (`boxoffice-worker audit`): it passes on what the purchase path really
//! wrote, and each of its checks fails on the one corruption it exists to catch. Postgres
//! corruptions are made inside a transaction that is rolled back, so the shared database never
//! sees them; Redis corruptions live in the test's own namespace and are undone.

use std::time::Duration;

use boxoffice_domain::ids::HoldId;
use boxoffice_domain::ids::{ConcertId, ScheduleId, SectionId};
use boxoffice_worker::audit::{self, Outcome, CHECKS};
use fred::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{
    buyers, charge, create_concert, eventually, hold_ok, pay_ok, seat_ids, spawn_app_with,
    spawn_worker, test_config, Sale, TestApp,
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

/// A schedule whose Redis inventory was lost (its keys deleted, as a `FLUSHALL` would) after
/// the worker mirrored two holds to Postgres as HELD and before their expiry swept them; then,
/// once they had expired, loaded again from Postgres by its next use. Postgres keeps the two
/// rows HELD for good (only the sweep of Redis's expiry set ends a hold), and the reload leaves
/// them out (they are over). Returns the app, the schedule, and its seats.
async fn a_schedule_reloaded_after_redis_lost_holds_that_then_expired(
) -> (TestApp, (ConcertId, ScheduleId), Vec<i64>) {
    let config = test_config(&[
        ("BOXOFFICE_HOLD_TTL_SECS", "2"),
        ("BOXOFFICE_TICK_MS", "50"),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let (c, s) = (concert.id, ScheduleId::new(concert.schedule));
    let ga = concert.ga_section.unwrap();
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [seated, general] = &buyers(&app, c, 2).await[..] else {
        unreachable!()
    };
    let holds = [
        hold_ok(&app, seated, s.get(), json!({ "seatIds": [seats[0]] })).await,
        hold_ok(
            &app,
            general,
            s.get(),
            json!({ "sectionId": ga, "quantity": 2 }),
        )
        .await,
    ];
    let ids: Vec<uuid::Uuid> = holds
        .iter()
        .map(|h| uuid::Uuid::parse_str(h["holdId"].as_str().unwrap()).unwrap())
        .collect();
    let held = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM holds WHERE id = ANY($1) AND status = 'HELD'",
        )
        .bind(&ids)
        .fetch_one(&app.pg)
        .await
        .unwrap()
    };
    eventually(
        "the sink mirrors both holds",
        Duration::from_secs(5),
        || async { held().await == 2 },
    )
    .await;
    // The worker stops before the holds expire, so no sweep ends them; then Redis loses the
    // schedule's inventory.
    worker.stop().await;
    let mut lost = vec![
        app.keys.inventory_loaded(c, s),
        app.keys.seat_owners(c, s),
        app.keys.user_tickets(c, s),
        app.keys.ga_remaining(c, SectionId::new(ga)),
        app.keys.hold_expiry(c),
        app.keys.hold_paying(c),
        app.keys.hold_events(c),
    ];
    lost.extend(ids.iter().map(|id| app.keys.hold(c, HoldId::new(*id))));
    let _: i64 = app.redis.del(lost).await.unwrap();
    eventually("both holds expire", Duration::from_secs(10), || async {
        let expired: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM holds WHERE id = ANY($1) AND expires_at <= now()",
        )
        .bind(&ids)
        .fetch_one(&app.pg)
        .await
        .unwrap();
        expired == 2
    })
    .await;
    assert_eq!(held().await, 2, "Postgres still has both as HELD");
    // The schedule's next use loads it from Postgres.
    let schedule = boxoffice_domain::concerts::pg::schedule(&app.state.pg, s)
        .await
        .unwrap();
    boxoffice_domain::holds::ensure_loaded(app.state.store(), &schedule)
        .await
        .unwrap();
    let loaded = audit::loaded_schedules(&app.pg, &app.redis, &app.keys)
        .await
        .unwrap();
    assert!(loaded.contains(&(c, s)), "the audit compares the schedule");
    (app, (c, s), seats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_holds_that_expired_before_the_schedule_reloaded_are_no_violation() {
    let (app, schedule, _) = a_schedule_reloaded_after_redis_lost_holds_that_then_expired().await;
    let outcomes = audit::compare_inventory(&app.pg, &app.redis, &app.keys, &[schedule])
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.violations == 0), "{outcomes:#?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_owner_postgres_does_not_have_still_fails_the_audit_of_a_reloaded_schedule() {
    let (app, (c, s), seats) = a_schedule_reloaded_after_redis_lost_holds_that_then_expired().await;
    let _: () = app
        .redis
        .hset(app.keys.seat_owners(c, s), (seats[3].to_string(), "sold"))
        .await
        .unwrap();
    let outcomes = audit::compare_inventory(&app.pg, &app.redis, &app.keys, &[(c, s)])
        .await
        .unwrap();
    let owners = find(&outcomes, "Redis seat owners");
    assert_eq!(owners.violations, 1, "{outcomes:#?}");
    assert_eq!(owners.offenders, [format!("seat {}", seats[3])]);
    let others: Vec<&Outcome> = outcomes.iter().filter(|o| o.violations != 0).collect();
    assert_eq!(
        others.len(),
        1,
        "only the seat owners disagree: {others:#?}"
    );
    app.stop().await;
}
