//! Payments: exact money, one charge per key and per hold under concurrency, a kept hold
//! after a refusal, the interrupted saga settled by the reconciler, and reservations.

use std::time::Duration;

use boxoffice_domain::{
    ids::{HoldId, ScheduleId},
    payments::fault::{self, FaultPoint},
};
use fred::prelude::*;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

use crate::{
    helpers::{
        assert_problem, buyers, charge, create_concert, eventually, get_active, hold_ok, pay,
        seat_ids, spawn_app_with, spawn_worker, statuses, test_config, Buyer, Sale, TestApp,
    },
    notifications::Receiver,
};

async fn balance_and_ledger(app: &TestApp, user: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT b.balance, (SELECT COALESCE(SUM(delta), 0)::bigint FROM point_ledger WHERE user_id = $1) \
         FROM point_balances b WHERE b.user_id = $1",
    )
    .bind(user)
    .fetch_one(&app.pg)
    .await
    .unwrap()
}

async fn payments_of(app: &TestApp, hold: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments WHERE hold_id = $1")
        .bind(uuid::Uuid::parse_str(hold).unwrap())
        .fetch_one(&app.pg)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_payment_debits_the_exact_amount_sells_the_seats_and_ends_the_session() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [buyer, other] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    charge(&app, &buyer.user, 1_000).await;
    let hold = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    assert_eq!(hold["amount"], 200);
    let id = hold["holdId"].as_str().unwrap();
    let response = pay(&app.http, &app.url(""), &buyer.user, id, "first").await;
    assert_eq!(response.status(), 201);
    let paid: Value = response.json().await.unwrap();
    assert_eq!(paid["amount"], 200);
    assert_eq!(paid["balance"], 800);
    assert!(paid["reservationId"].is_string() && paid["paymentId"].is_string());
    assert_eq!(balance_and_ledger(&app, buyer.user.id).await, (800, 800));
    // The seats are sold, as the other buyer's seat map shows at once on this replica.
    let map = get_active(
        &app,
        other,
        &format!(
            "/api/v1/schedules/{}/seats?section={}",
            concert.schedule, concert.sections[0]
        ),
    )
    .await;
    let status = statuses(&map);
    assert_eq!(status[&seats[0]], "SOLD");
    assert_eq!(status[&seats[1]], "SOLD");
    assert_eq!(status[&seats[2]], "AVAILABLE");
    // Paying ended the buyer's ACTIVE session.
    let after = app
        .http
        .get(app.url(&format!("/api/v1/schedules/{}/sections", concert.schedule)))
        .header("authorization", buyer.user.bearer())
        .header("queue-token", &buyer.queue_token)
        .send()
        .await
        .unwrap();
    assert_problem(after, 403, "QUEUE_NOT_ACTIVE").await;
    // Only the buyer sees the reservation.
    let mine: Value = app
        .http
        .get(app.url("/api/v1/me/reservations"))
        .header("authorization", buyer.user.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reservationId"], paid["reservationId"]);
    assert_eq!(items[0]["scheduleId"], concert.schedule);
    assert_eq!(items[0]["quantity"], 2);
    assert_eq!(items[0]["amount"], 200);
    assert_eq!(items[0]["seats"][0]["seatId"], seats[0]);
    assert!(items[0]["seats"][0]["seatNo"].is_string() && items[0]["paidAt"].is_string());
    let theirs: Value = app
        .http
        .get(app.url("/api/v1/me/reservations"))
        .header("authorization", other.user.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"], json!([]));
    // Every step is measured.
    let metrics = app
        .http
        .get(format!("http://{}/metrics", app.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "boxoffice_holds_total{kind=\"seats\",outcome=\"held\"}",
        "boxoffice_payments_total{outcome=\"paid\"}",
        "boxoffice_payments_duration_seconds_bucket",
        "boxoffice_cache_requests_total{cache=\"seat_maps\",result=\"miss\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_retried_concurrently_with_one_key_charges_once_with_one_answer() {
    let config = test_config(&[]);
    let (a, b) = (
        spawn_app_with(config.clone()).await,
        spawn_app_with(config).await,
    );
    let concert = create_concert(&a.pg, Sale::Open, 1, 5, Some(10)).await;
    let buyer = &buyers(&a, concert.id, 1).await[0];
    charge(&a, &buyer.user, 1_000).await;
    let hold = hold_ok(
        &a,
        buyer,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 2 }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap().to_owned();
    let answers: Vec<(u16, Value)> = stream::iter(0..20)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let (http, base, user, id) = (
                app.http.clone(),
                app.url(""),
                buyer.user.clone(),
                id.clone(),
            );
            async move {
                let response = pay(&http, &base, &user, &id, "same-key").await;
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body, &answers[0].1, "every retry gets the same body");
    }
    assert_eq!(answers[0].1["balance"], 900);
    assert_eq!(payments_of(&a, &id).await, 1);
    assert_eq!(balance_and_ledger(&a, buyer.user.id).await, (900, 900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_payments_of_one_hold_with_different_keys_pay_once() {
    let config = test_config(&[]);
    let (a, b) = (
        spawn_app_with(config.clone()).await,
        spawn_app_with(config).await,
    );
    let concert = create_concert(&a.pg, Sale::Open, 1, 5, None).await;
    let seat = seat_ids(&a.pg, concert.sections[0]).await[0];
    let buyer = &buyers(&a, concert.id, 1).await[0];
    charge(&a, &buyer.user, 1_000).await;
    let hold = hold_ok(&a, buyer, concert.schedule, json!({ "seatIds": [seat] })).await;
    let id = hold["holdId"].as_str().unwrap().to_owned();
    let answers: Vec<(u16, Value)> = stream::iter(0..20)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let (http, base, user, id) = (
                app.http.clone(),
                app.url(""),
                buyer.user.clone(),
                id.clone(),
            );
            async move {
                let response = pay(&http, &base, &user, &id, &format!("key-{i}")).await;
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let paid = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(paid, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["code"], "HOLD_ALREADY_PAID");
    }
    assert_eq!(payments_of(&a, &id).await, 1);
    assert_eq!(balance_and_ledger(&a, buyer.user.id).await, (900, 900));
}

#[tokio::test]
async fn insufficient_points_refuse_the_payment_and_keep_the_hold_payable() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [buyer, rival] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    charge(&app, &buyer.user, 150).await;
    let hold = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap();
    let short = pay(&app.http, &app.url(""), &buyer.user, id, "try-1").await;
    let body = assert_problem(short, 402, "INSUFFICIENT_POINTS").await;
    assert!(body["detail"].as_str().unwrap().contains("150"), "{body}");
    assert_eq!(balance_and_ledger(&app, buyer.user.id).await, (150, 150));
    // The hold is kept: its seats are still taken.
    let taken = crate::helpers::post_hold(
        &app.http,
        &app.url(""),
        rival,
        concert.schedule,
        json!({ "seatIds": [seats[0]] }),
    )
    .await;
    assert_problem(taken, 409, "SEAT_UNAVAILABLE").await;
    // After a charge the same key goes through: the refusal was not stored as its answer.
    charge(&app, &buyer.user, 100).await;
    let paid = pay(&app.http, &app.url(""), &buyer.user, id, "try-1").await;
    assert_eq!(paid.status(), 201);
    assert_eq!(balance_and_ledger(&app, buyer.user.id).await, (50, 50));
}

#[tokio::test]
async fn payment_needs_a_token_and_an_idempotency_key_and_refuses_key_reuse() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    charge(&app, &buyer.user, 1_000).await;
    let first = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": [seats[0]] }),
    )
    .await;
    let second = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": [seats[1]] }),
    )
    .await;
    let url = |hold: &Value| {
        app.url(&format!(
            "/api/v1/holds/{}/payment",
            hold["holdId"].as_str().unwrap()
        ))
    };
    let anonymous = app
        .http
        .post(url(&first))
        .header("idempotency-key", "k")
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "UNAUTHORIZED").await;
    let keyless = app
        .http
        .post(url(&first))
        .header("authorization", buyer.user.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(keyless, 400, "IDEMPOTENCY_KEY_REQUIRED").await;
    let ok = pay(
        &app.http,
        &app.url(""),
        &buyer.user,
        first["holdId"].as_str().unwrap(),
        "k",
    )
    .await;
    assert_eq!(ok.status(), 201);
    let reused = pay(
        &app.http,
        &app.url(""),
        &buyer.user,
        second["holdId"].as_str().unwrap(),
        "k",
    )
    .await;
    assert_problem(reused, 422, "IDEMPOTENCY_KEY_REUSED").await;
    let again = pay(
        &app.http,
        &app.url(""),
        &buyer.user,
        first["holdId"].as_str().unwrap(),
        "other",
    )
    .await;
    assert_problem(again, 409, "HOLD_ALREADY_PAID").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_interrupted_after_the_commit_is_finalised_by_the_reconciler() {
    let config = test_config(&[
        ("BOXOFFICE_RECONCILE_AFTER_MS", "300"),
        ("BOXOFFICE_TICK_MS", "50"),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    charge(&app, &buyer.user, 1_000).await;
    let hold = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap();
    let hold_id = HoldId::parse(id).unwrap();
    fault::arm(hold_id, FaultPoint::AfterCommit);
    let interrupted = pay(&app.http, &app.url(""), &buyer.user, id, "k").await;
    assert_eq!(interrupted.status(), 500);
    assert_eq!(payments_of(&app, id).await, 1, "the commit happened");
    let owners = app
        .keys
        .seat_owners(concert.id, ScheduleId::new(concert.schedule));
    eventually(
        "the reconciler marks the seats sold",
        Duration::from_secs(10),
        || async {
            let owner: Vec<Option<String>> = app
                .redis
                .hmget(&owners, vec![seats[0], seats[1]])
                .await
                .unwrap();
            owner.iter().all(|o| o.as_deref() == Some("sold"))
        },
    )
    .await;
    let state: String = app
        .redis
        .hget(app.keys.hold(concert.id, hold_id), "state")
        .await
        .unwrap();
    assert_eq!(state, "PAID");
    // The client's retry with the same key gets the committed payment; money moved once.
    let retry = pay(&app.http, &app.url(""), &buyer.user, id, "k").await;
    assert_eq!(retry.status(), 201);
    assert_eq!(balance_and_ledger(&app, buyer.user.id).await, (800, 800));
    worker.stop().await;
}

/// The process dies right after the commit (the saga's step 3 never runs); the reconciler
/// finishes all of step 3: the hold PAID, the buyer's ACTIVE session ended as the saga would
/// have ended it, and the payment's notification written and delivered once, as for a payment
/// the saga finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_the_reconciler_finishes_ends_the_session_and_notifies_once() {
    let url = Receiver::default().listen().await;
    let config = test_config(&[
        ("BOXOFFICE_RECONCILE_AFTER_MS", "300"),
        ("BOXOFFICE_TICK_MS", "50"),
        ("BOXOFFICE_WEBHOOK_URL", url.as_str()),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    // The buyer's session as admission leaves it: in the concert's ACTIVE set.
    let active = app.keys.queue_active(concert.id);
    let _: () = app
        .redis
        .zadd(
            &active,
            None,
            None,
            false,
            false,
            (
                (boxoffice_domain::now_ms() + 600_000) as f64,
                buyer.user.id.to_string(),
            ),
        )
        .await
        .unwrap();
    charge(&app, &buyer.user, 1_000).await;
    let hold = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": [seats[0]] }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap();
    let hold_id = HoldId::parse(id).unwrap();
    fault::arm(hold_id, FaultPoint::AfterCommit);
    let interrupted = pay(&app.http, &app.url(""), &buyer.user, id, "k").await;
    assert_eq!(interrupted.status(), 500);
    assert_eq!(payments_of(&app, id).await, 1, "the commit happened");
    let hold_key = app.keys.hold(concert.id, hold_id);
    let state: String = app.redis.hget(&hold_key, "state").await.unwrap();
    assert_eq!(state, "PAYING", "the saga stopped before step 3");
    let reservation: String = sqlx::query_scalar(
        "SELECT payload->>'reservationId' FROM outbox WHERE payload->>'holdId' = $1",
    )
    .bind(id)
    .fetch_one(&app.pg)
    .await
    .unwrap();
    // The outbox is shared with the stack and other tests, whose backlog is delivered oldest
    // first: put this row at its front so the test waits for its delivery, not for theirs.
    sqlx::query("UPDATE outbox SET next_attempt_at = '-infinity' WHERE payload->>'holdId' = $1")
        .bind(id)
        .execute(&app.pg)
        .await
        .unwrap();

    let worker = spawn_worker(&config).await;
    eventually(
        "the reconciler finalises the hold",
        Duration::from_secs(10),
        || async {
            let state: String = app.redis.hget(&hold_key, "state").await.unwrap();
            state == "PAID"
        },
    )
    .await;
    let session: Option<f64> = app
        .redis
        .zscore(&active, buyer.user.id.to_string())
        .await
        .unwrap();
    assert_eq!(session, None, "the buyer is out of the ACTIVE set");
    // Every replica learns of the end from the ended log within a second, and refuses the
    // buyer's ACTIVE token from then on.
    eventually(
        "the buyer's ACTIVE token is refused",
        Duration::from_secs(5),
        || async {
            let response = app
                .http
                .get(app.url(&format!("/api/v1/schedules/{}/sections", concert.schedule)))
                .header("authorization", buyer.user.bearer())
                .header("queue-token", &buyer.queue_token)
                .send()
                .await
                .unwrap();
            response.status() == 403
        },
    )
    .await;
    let refused = app
        .http
        .get(app.url(&format!("/api/v1/schedules/{}/sections", concert.schedule)))
        .header("authorization", buyer.user.bearer())
        .header("queue-token", &buyer.queue_token)
        .send()
        .await
        .unwrap();
    assert_problem(refused, 403, "QUEUE_NOT_ACTIVE").await;
    // The client's retry gets the committed payment and adds no second notification.
    let retry = pay(&app.http, &app.url(""), &buyer.user, id, "k").await;
    assert_eq!(retry.status(), 201);
    let paid: Value = retry.json().await.unwrap();
    assert_eq!(paid["reservationId"], reservation.as_str());
    eventually(
        "the notification is delivered",
        Duration::from_secs(10),
        || async {
            let delivered: Option<bool> = sqlx::query_scalar(
                "SELECT delivered_at IS NOT NULL FROM outbox WHERE payload->>'holdId' = $1",
            )
            .bind(id)
            .fetch_optional(&app.pg)
            .await
            .unwrap();
            delivered == Some(true)
        },
    )
    .await;
    worker.stop().await;
    // Once: one row, delivered at its first attempt, so never due again. (Which worker's
    // receiver got it is not asserted: every test's worker delivers from the shared outbox.)
    let rows: Vec<(bool, i32)> = sqlx::query_as(
        "SELECT delivered_at IS NOT NULL, attempts FROM outbox WHERE payload->>'reservationId' = $1",
    )
    .bind(&reservation)
    .fetch_all(&app.pg)
    .await
    .unwrap();
    assert_eq!(rows, [(true, 0)], "one notification, delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_interrupted_before_the_commit_is_restored_by_the_reconciler() {
    let config = test_config(&[
        ("BOXOFFICE_RECONCILE_AFTER_MS", "300"),
        ("BOXOFFICE_TICK_MS", "50"),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    charge(&app, &buyer.user, 1_000).await;
    let hold = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 2 }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap();
    let hold_id = HoldId::parse(id).unwrap();
    fault::arm(hold_id, FaultPoint::BeforeCommit);
    let interrupted = pay(&app.http, &app.url(""), &buyer.user, id, "k").await;
    assert_eq!(interrupted.status(), 500);
    let key = app.keys.hold(concert.id, hold_id);
    let state: String = app.redis.hget(&key, "state").await.unwrap();
    assert_eq!(state, "PAYING", "the interrupted saga left its claim");
    eventually(
        "the reconciler puts the hold back",
        Duration::from_secs(10),
        || async {
            let state: String = app.redis.hget(&key, "state").await.unwrap();
            state == "HELD"
        },
    )
    .await;
    assert_eq!(payments_of(&app, id).await, 0, "nothing was committed");
    assert_eq!(
        balance_and_ledger(&app, buyer.user.id).await,
        (1_000, 1_000)
    );
    // Restored with its original expiry, and payable.
    let expiry: Option<f64> = app
        .redis
        .zscore(app.keys.hold_expiry(concert.id), id)
        .await
        .unwrap();
    let expected =
        chrono::DateTime::parse_from_rfc3339(hold["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expiry.map(|e| e as i64), Some(expected.timestamp_millis()));
    let paid = pay(&app.http, &app.url(""), &buyer.user, id, "k").await;
    assert_eq!(paid.status(), 201);
    assert_eq!(balance_and_ledger(&app, buyer.user.id).await, (900, 900));
    worker.stop().await;
}

/// Sends the payment of `holds[i]` by `buyers[i]` for every `i` of `requests`, all at once,
/// each with the key `key(i)`; answers (i, status, body) in the order they come back.
async fn pay_at_once(
    app: &TestApp,
    buyers: &[Buyer],
    holds: &[String],
    requests: &[usize],
    key: impl Fn(usize) -> String,
) -> Vec<(usize, u16, Value)> {
    stream::iter(requests.iter().copied())
        .map(|i| {
            let (http, base, user, id, key) = (
                app.http.clone(),
                app.url(""),
                buyers[i].user.clone(),
                holds[i].clone(),
                key(i),
            );
            async move {
                let response = pay(&http, &base, &user, &id, &key).await;
                let status = response.status().as_u16();
                (i, status, response.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(requests.len())
        .collect()
        .await
}

/// Thirty buyers pay at once through one replica, so their payments share batches (one
/// transaction each, see `payments::batch`): buyers short of points, a retried request and GA
/// holds of two sections (which a batch locks in order) in the same batches as good payments.
/// Each gets the answer of a payment made alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_batched_together_each_charge_exactly_their_own_hold() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 20, Some(100)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let ga = [
        concert.ga_section.unwrap(),
        sqlx::query_scalar(
            "INSERT INTO sections (schedule_id, name, kind, price, capacity) \
             VALUES ($1, 'GA 2', 'GA', 50, 100) RETURNING id",
        )
        .bind(concert.schedule)
        .fetch_one(&app.pg)
        .await
        .unwrap(),
    ];
    let buyers = buyers(&app, concert.id, 30).await;
    // Every fifth buyer cannot afford a hold: each costs 100 (a seat, or two GA places at 50).
    let short = |i: usize| i.is_multiple_of(5);
    let mut holds = Vec::new();
    for (i, buyer) in buyers.iter().enumerate() {
        charge(&app, &buyer.user, if short(i) { 50 } else { 1_000 }).await;
        let body = if i < 20 {
            json!({ "seatIds": [seats[i]] })
        } else {
            json!({ "sectionId": ga[i % 2], "quantity": 2 })
        };
        let hold = hold_ok(&app, buyer, concert.schedule, body).await;
        holds.push(hold["holdId"].as_str().unwrap().to_owned());
    }
    // Buyer 1's request is sent twice with one key, as a client retrying at once would.
    let requests: Vec<usize> = (0..buyers.len()).chain([1]).collect();
    let answers = pay_at_once(&app, &buyers, &holds, &requests, |i| format!("pay-{i}")).await;
    let mut paid_holds = Vec::new();
    for (i, status, body) in &answers {
        if short(*i) {
            assert_eq!(*status, 402, "buyer {i}: {body}");
            assert_eq!(body["code"], "INSUFFICIENT_POINTS");
        } else {
            assert_eq!(*status, 201, "buyer {i}: {body}");
            assert_eq!(body["amount"], 100);
            assert_eq!(body["balance"], 900);
            paid_holds.push(uuid::Uuid::parse_str(&holds[*i]).unwrap());
        }
    }
    let retried: Vec<&Value> = answers
        .iter()
        .filter(|(i, _, _)| *i == 1)
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(retried[0], retried[1], "a retry gets the same answer");
    for (i, buyer) in buyers.iter().enumerate() {
        let expected = if short(i) { 50 } else { 900 };
        assert_eq!(
            balance_and_ledger(&app, buyer.user.id).await,
            (expected, expected),
            "buyer {i}"
        );
        let payments = payments_of(&app, &holds[i]).await;
        assert_eq!(payments, i64::from(!short(i)), "buyer {i}");
    }
    let (sold_seats, ga_sold, ga2_sold): (i64, i32, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM reservation_items ri JOIN seats s ON s.id = ri.seat_id \
                 WHERE s.section_id = $1), \
                (SELECT sold FROM sections WHERE id = $2), (SELECT sold FROM sections WHERE id = $3)",
    )
    .bind(concert.sections[0])
    .bind(ga[0])
    .bind(ga[1])
    .fetch_one(&app.pg)
    .await
    .unwrap();
    assert_eq!(sold_seats, 16, "20 seat holds, 4 of them short");
    assert_eq!(
        ga_sold, 8,
        "5 GA pairs in the first section, 1 of them short (buyer 20)"
    );
    assert_eq!(
        ga2_sold, 8,
        "5 GA pairs in the second, 1 of them short (buyer 25)"
    );
    // They were batched: payments of one transaction share its timestamp.
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT created_at) FROM payments WHERE hold_id = ANY($1)",
    )
    .bind(&paid_holds)
    .fetch_one(&app.pg)
    .await
    .unwrap();
    assert!(
        transactions < paid_holds.len() as i64,
        "{} payments in {transactions} transactions",
        paid_holds.len()
    );
    // A refused payment released its key and kept its hold: after a charge, the same key pays.
    charge(&app, &buyers[0].user, 100).await;
    let retry = pay(&app.http, &app.url(""), &buyers[0].user, &holds[0], "pay-0").await;
    assert_eq!(retry.status(), 201);
    assert_eq!(balance_and_ledger(&app, buyers[0].user.id).await, (50, 50));
}

/// A batch whose recording statement fails as a whole (only a Redis data loss can make a
/// constraint refuse it) rolls back, puts every claimed hold back, and pays each payment alone:
/// every buyer is still charged once, and nothing is left claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_as_a_whole_pays_each_payment_alone() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 10, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyers = buyers(&app, concert.id, 8).await;
    let mut holds = Vec::new();
    for (i, buyer) in buyers.iter().enumerate() {
        charge(&app, &buyer.user, 1_000).await;
        let hold = hold_ok(
            &app,
            buyer,
            concert.schedule,
            json!({ "seatIds": [seats[i]] }),
        )
        .await;
        holds.push(hold["holdId"].as_str().unwrap().to_owned());
    }
    // Every hold is armed, so whichever batches form, each of them is refused once.
    for hold in &holds {
        fault::arm(HoldId::parse(hold).unwrap(), FaultPoint::BatchRefused);
    }
    let requests: Vec<usize> = (0..buyers.len()).collect();
    let answers = pay_at_once(&app, &buyers, &holds, &requests, |_| "once".to_owned()).await;
    let statuses: Vec<u16> = answers.iter().map(|(_, status, _)| *status).collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let refused = holds
        .iter()
        .filter(|h| !fault::disarm(HoldId::parse(h).unwrap(), FaultPoint::BatchRefused))
        .count();
    assert!(refused > 0, "no batch was refused");
    for (i, buyer) in buyers.iter().enumerate() {
        assert_eq!(payments_of(&app, &holds[i]).await, 1, "buyer {i}");
        assert_eq!(balance_and_ledger(&app, buyer.user.id).await, (900, 900));
        let key = app.keys.hold(concert.id, HoldId::parse(&holds[i]).unwrap());
        let state: String = app.redis.hget(&key, "state").await.unwrap();
        assert_eq!(state, "PAID", "buyer {i}");
    }
}
