//! Holds: all-or-nothing seats, the general-admission counter, the ticket limit, the sale
//! window, expiry without readers, release, and the worker's mirror into Postgres surviving a
//! worker killed mid-batch. The races run across two gateway instances.

use std::{collections::HashMap, time::Duration};

use boxoffice_domain::ids::HoldId;
use fred::prelude::*;
use futures::{stream, StreamExt};
use rand::{seq::SliceRandom, Rng};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, buyers, charge, create_concert, eventually, ga_remaining, hold_ok, pay,
    post_hold, seat_ids, spawn_app, spawn_app_with, spawn_worker, test_config, Sale, TestApp,
};

/// Sends `requests` (app index, buyer index, body) at once, `concurrency` in flight, and
/// returns each buyer index with the status and body it got (in completion order).
async fn race(
    apps: &[&TestApp],
    buyers: &[crate::helpers::Buyer],
    schedule: i64,
    requests: Vec<(usize, usize, Value)>,
    concurrency: usize,
) -> Vec<(usize, u16, Value)> {
    stream::iter(requests)
        .map(|(app, buyer, body)| {
            let app = apps[app];
            let (http, base, who) = (app.http.clone(), app.url(""), buyers[buyer].clone());
            async move {
                let response = post_hold(&http, &base, &who, schedule, body).await;
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                (buyer, status, body)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

async fn holds_in_pg(pg: &sqlx::PgPool, schedule: i64) -> Vec<(uuid::Uuid, String, i32)> {
    sqlx::query_as("SELECT id, status, quantity FROM holds WHERE schedule_id = $1")
        .bind(schedule)
        .fetch_all(pg)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_is_held_at_most_once_under_2000_concurrent_holds() {
    let config = test_config(&[]);
    let (a, b) = (
        spawn_app_with(config.clone()).await,
        spawn_app_with(config).await,
    );
    let concert = create_concert(&a.pg, Sale::Open, 1, 10, None).await;
    let buyers = buyers(&a, concert.id, 100).await;
    let seat = seat_ids(&a.pg, concert.sections[0]).await[0];
    let requests = (0..2000)
        .map(|i| (i % 2, i % buyers.len(), json!({ "seatIds": [seat] })))
        .collect();
    let results = race(&[&a, &b], &buyers, concert.schedule, requests, 400).await;
    let held: Vec<_> = results.iter().filter(|(_, s, _)| *s == 201).collect();
    assert_eq!(held.len(), 1, "exactly one hold wins the seat");
    let refused = results
        .iter()
        .filter(|(_, s, body)| *s == 409 && body["code"] == "SEAT_UNAVAILABLE")
        .count();
    assert_eq!(refused, 1999, "every other request is SEAT_UNAVAILABLE");
    assert_eq!(held[0].2["seats"][0]["seatId"], seat);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_seat_sets_never_put_a_seat_in_two_holds() {
    let config = test_config(&[]);
    let (a, b) = (
        spawn_app_with(config.clone()).await,
        spawn_app_with(config.clone()).await,
    );
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&a.pg, Sale::Open, 2, 15, None).await;
    let mut seats = seat_ids(&a.pg, concert.sections[0]).await;
    seats.extend(seat_ids(&a.pg, concert.sections[1]).await);
    let buyers = buyers(&a, concert.id, 60).await;
    let mut rng = rand::thread_rng();
    let requests = (0..600)
        .map(|i| {
            let n = rng.gen_range(1..=4);
            let set: Vec<i64> = seats.choose_multiple(&mut rng, n).copied().collect();
            (i % 2, i % buyers.len(), json!({ "seatIds": set }))
        })
        .collect();
    let results = race(&[&a, &b], &buyers, concert.schedule, requests, 200).await;
    let mut owner: HashMap<i64, String> = HashMap::new();
    let mut granted = 0;
    for (_, status, body) in &results {
        match status {
            201 => {
                granted += 1;
                for seat in body["seats"].as_array().unwrap() {
                    let seat = seat["seatId"].as_i64().unwrap();
                    let hold = body["holdId"].as_str().unwrap().to_owned();
                    assert!(
                        owner.insert(seat, hold).is_none(),
                        "seat {seat} is in two holds"
                    );
                }
            }
            409 => assert_eq!(body["code"], "SEAT_UNAVAILABLE"),
            422 => assert_eq!(body["code"], "HOLD_LIMIT_EXCEEDED"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(granted > 0);
    // The worker mirrors every granted hold into Postgres, and there too no seat has two
    // live holds.
    eventually(
        "the sink writes every hold",
        Duration::from_secs(20),
        || async { holds_in_pg(&a.pg, concert.schedule).await.len() == granted },
    )
    .await;
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT hs.seat_id FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id \
         WHERE h.schedule_id = $1 AND h.status = 'HELD' GROUP BY hs.seat_id HAVING count(*) > 1) d",
    )
    .bind(concert.schedule)
    .fetch_one(&a.pg)
    .await
    .unwrap();
    assert_eq!(doubled, 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_general_admission_section_never_sells_past_its_capacity() {
    // The ticket limit is not under test here: raised so that 200 users can ask for 20,000
    // requests' worth of places.
    let config = test_config(&[("BOXOFFICE_TICKET_LIMIT", "100000")]);
    let (a, b) = (
        spawn_app_with(config.clone()).await,
        spawn_app_with(config.clone()).await,
    );
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&a.pg, Sale::Open, 0, 0, Some(5_000)).await;
    let ga = concert.ga_section.unwrap();
    let buyers = buyers(&a, concert.id, 200).await;
    let mut rng = rand::thread_rng();
    let requests = (0..20_000)
        .map(|i| {
            let q: i64 = rng.gen_range(1..=4);
            (
                i % 2,
                i % buyers.len(),
                json!({ "sectionId": ga, "quantity": q }),
            )
        })
        .collect();
    let results = race(&[&a, &b], &buyers, concert.schedule, requests, 400).await;
    let mut holds: Vec<(String, i64, usize)> = Vec::new();
    for (buyer, status, body) in &results {
        match status {
            201 => holds.push((
                body["holdId"].as_str().unwrap().to_owned(),
                body["quantity"].as_i64().unwrap(),
                *buyer,
            )),
            409 => assert_eq!(body["code"], "SOLD_OUT"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let held: i64 = holds.iter().map(|h| h.1).sum();
    assert!(held <= 5_000, "held {held} places of 5,000");
    // Pay a few holds, so sold is part of the sum.
    let mut sold = 0;
    for (hold, quantity, buyer) in holds.iter().take(10) {
        let owner = &buyers[*buyer].user;
        charge(&a, owner, 1_000).await;
        let response = pay(&a.http, &a.url(""), owner, hold, &format!("pay-{hold}")).await;
        assert_eq!(response.status(), 201);
        sold += quantity;
    }
    assert!(sold > 0);
    let remaining = ga_remaining(&a, concert.id, ga).await;
    let pg_sold: i32 = sqlx::query_scalar("SELECT sold FROM sections WHERE id = $1")
        .bind(ga)
        .fetch_one(&a.pg)
        .await
        .unwrap();
    assert_eq!(i64::from(pg_sold), sold);
    assert_eq!(
        remaining + (held - sold) + sold,
        5_000,
        "remaining + held + sold = capacity"
    );
    eventually(
        "the sink writes every hold",
        Duration::from_secs(30),
        || async { holds_in_pg(&a.pg, concert.schedule).await.len() == holds.len() },
    )
    .await;
    let in_pg: i64 = holds_in_pg(&a.pg, concert.schedule)
        .await
        .iter()
        .map(|h| i64::from(h.2))
        .sum();
    assert_eq!(in_pg, held);
    worker.stop().await;
}

#[tokio::test]
async fn a_user_holds_at_most_the_ticket_limit_per_schedule() {
    let config = test_config(&[("BOXOFFICE_TICKET_LIMIT", "4")]);
    let app = spawn_app_with(config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 10, Some(100)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    let (http, base) = (&app.http, app.url(""));
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[0..3] }),
    )
    .await;
    let over = post_hold(
        http,
        &base,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[3..5] }),
    )
    .await;
    let body = assert_problem(over, 422, "HOLD_LIMIT_EXCEEDED").await;
    assert!(body["detail"].as_str().unwrap().contains('4'), "{body}");
    let ga = json!({ "sectionId": concert.ga_section, "quantity": 2 });
    let over = post_hold(http, &base, buyer, concert.schedule, ga).await;
    assert_problem(over, 422, "HOLD_LIMIT_EXCEEDED").await;
    // The refused GA request gave its places back.
    let remaining = ga_remaining(&app, concert.id, concert.ga_section.unwrap()).await;
    assert_eq!(remaining, 100);
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 1 }),
    )
    .await;
}

/// A replica sends its concurrent holds of a schedule to Redis in one call (`holds::batch`).
/// Within a call each hold is decided as if it came alone, in order: a set of seats is held
/// whole or not at all and sees what the sets before it took, and each general-admission hold
/// is taken from the counter or given back before the next one.
#[tokio::test]
async fn holds_sent_in_one_call_are_each_decided_alone_in_order() {
    use boxoffice_domain::{
        holds::redis::{hold_general, hold_seats, PlacesWanted, SeatsWanted},
        ids::{ScheduleId, SeatId, SectionId},
        Error,
    };
    let app = spawn_app().await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(3)).await;
    let [a, b, c] = &buyers(&app, concert.id, 3).await[..] else {
        unreachable!()
    };
    let seats: Vec<SeatId> = seat_ids(&app.pg, concert.sections[0])
        .await
        .into_iter()
        .map(SeatId::new)
        .collect();
    let ga = SectionId::new(concert.ga_section.unwrap());
    // Loads the schedule's inventory (and takes seat 4 for a).
    hold_ok(
        &app,
        a,
        concert.schedule,
        json!({ "seatIds": [seats[4].get()] }),
    )
    .await;
    let (store, schedule) = (app.state.store(), ScheduleId::new(concert.schedule));
    let user = |b: &crate::helpers::Buyer| boxoffice_domain::ids::UserId::new(b.user.id);
    let ids: Vec<HoldId> = (0..3).map(|_| HoldId::generate(concert.id)).collect();

    let wanted = [
        (ids[0], a, &seats[0..2]),
        // Overlaps the first set (seat 1): refused whole, so seat 2 stays free.
        (ids[1], b, &seats[1..3]),
        (ids[2], c, &seats[2..4]),
    ]
    .map(|(hold, buyer, seats)| SeatsWanted {
        hold,
        user: user(buyer),
        amount: 100,
        seats,
    });
    let placed = hold_seats(store.hot, store.terms(), concert.id, schedule, &wanted)
        .await
        .unwrap();
    assert!(matches!(placed[0], Ok(Some(_))), "{:?}", placed[0]);
    assert!(
        matches!(placed[1], Err(Error::SeatUnavailable)),
        "{:?}",
        placed[1]
    );
    assert!(matches!(placed[2], Ok(Some(_))), "{:?}", placed[2]);
    let owners: HashMap<String, String> = app
        .redis
        .hgetall(app.keys.seat_owners(concert.id, schedule))
        .await
        .unwrap();
    let owner = |i: usize| owners.get(&seats[i].to_string()).cloned();
    assert_eq!(
        (0..4).map(owner).collect::<Vec<_>>(),
        [ids[0], ids[0], ids[2], ids[2]].map(|h| Some(h.to_string()))
    );

    // Three places: 2 fit, the next 2 do not (given back at once), the last 1 fits.
    let wanted = [(b, 2), (c, 2), (a, 1)].map(|(buyer, quantity)| PlacesWanted {
        hold: HoldId::generate(concert.id),
        user: user(buyer),
        quantity,
        amount: 50 * i64::from(quantity),
    });
    let placed = hold_general(store.hot, store.terms(), concert.id, schedule, ga, &wanted)
        .await
        .unwrap();
    assert!(matches!(placed[0], Ok(Some(_))), "{:?}", placed[0]);
    assert!(matches!(placed[1], Err(Error::SoldOut)), "{:?}", placed[1]);
    assert!(matches!(placed[2], Ok(Some(_))), "{:?}", placed[2]);
    assert_eq!(ga_remaining(&app, concert.id, ga.get()).await, 0);
}

/// A batch's general-admission holds share one `DECRBY` of their total: each is still held
/// only within its user's ticket limit, counting that user's holds earlier in the same call,
/// and the refused ones' places go back to the counter.
#[tokio::test]
async fn general_admission_holds_in_one_call_keep_each_users_ticket_limit() {
    use boxoffice_domain::{
        holds::redis::{hold_general, PlacesWanted},
        ids::{ScheduleId, SectionId, UserId},
        Error,
    };
    let app = spawn_app_with(test_config(&[("BOXOFFICE_TICKET_LIMIT", "4")])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(100)).await;
    let [a, b] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    let ga = SectionId::new(concert.ga_section.unwrap());
    // Loads the schedule's inventory with a first hold of 1 for b.
    hold_ok(
        &app,
        b,
        concert.schedule,
        json!({ "sectionId": ga.get(), "quantity": 1 }),
    )
    .await;
    let wanted = [(a, 3), (a, 2), (b, 3), (b, 1), (a, 1)].map(|(buyer, quantity)| PlacesWanted {
        hold: HoldId::generate(concert.id),
        user: UserId::new(buyer.user.id),
        quantity,
        amount: 50 * i64::from(quantity),
    });
    let schedule = ScheduleId::new(concert.schedule);
    let store = app.state.store();
    let placed = hold_general(store.hot, store.terms(), concert.id, schedule, ga, &wanted)
        .await
        .unwrap();
    let outcome: Vec<&str> = placed
        .iter()
        .map(|p| match p {
            Ok(Some(_)) => "held",
            Err(Error::HoldLimitExceeded { .. }) => "over limit",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        outcome,
        ["held", "over limit", "held", "over limit", "held"]
    );
    assert_eq!(
        ga_remaining(&app, concert.id, ga.get()).await,
        100 - 1 - 3 - 3 - 1
    );
    let tickets: HashMap<String, i64> = app
        .redis
        .hgetall(app.keys.user_tickets(concert.id, schedule))
        .await
        .unwrap();
    assert_eq!(tickets[&a.user.id.to_string()], 4);
    assert_eq!(tickets[&b.user.id.to_string()], 4);
}

/// After `SCRIPT FLUSH` the hold's `EVALSHA` fails with `NOSCRIPT`: the script is loaded and the
/// call made again, and the places are taken once (the decrement is the script's, so the failed
/// call took nothing).
#[tokio::test]
async fn a_general_admission_hold_after_redis_lost_its_scripts_takes_its_places_once() {
    let app = spawn_app().await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(100)).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    let ga = concert.ga_section.unwrap();
    // Loads the schedule's inventory, so the next hold goes straight to the script.
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": ga, "quantity": 1 }),
    )
    .await;
    let _: () = app.redis.script_flush(false).await.unwrap();
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": ga, "quantity": 2 }),
    )
    .await;
    let remaining = ga_remaining(&app, concert.id, ga).await;
    assert_eq!(
        remaining, 97,
        "3 places held, none lost to the failed attempt"
    );
}

#[tokio::test]
async fn holds_are_refused_outside_the_sale_window() {
    let app = spawn_app_with(test_config(&[])).await;
    let upcoming = create_concert(
        &app.pg,
        Sale::OpensAt(chrono::Utc::now() + chrono::Duration::hours(2)),
        1,
        5,
        Some(10),
    )
    .await;
    let closed = create_concert(&app.pg, Sale::Closed, 1, 5, Some(10)).await;
    for concert in [upcoming, closed] {
        let buyer = &buyers(&app, concert.id, 1).await[0];
        let seat = seat_ids(&app.pg, concert.sections[0]).await[0];
        for body in [
            json!({ "seatIds": [seat] }),
            json!({ "sectionId": concert.ga_section, "quantity": 1 }),
        ] {
            let response = post_hold(&app.http, &app.url(""), buyer, concert.schedule, body).await;
            assert_problem(response, 403, "SALE_NOT_OPEN").await;
        }
    }
}

#[tokio::test]
async fn holding_needs_an_active_session_for_the_schedules_concert() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let other = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seat = seat_ids(&app.pg, concert.sections[0]).await[0];
    let mut buyer = buyers(&app, other.id, 1).await.remove(0);
    let body = json!({ "seatIds": [seat] });
    let wrong_concert = post_hold(
        &app.http,
        &app.url(""),
        &buyer,
        concert.schedule,
        body.clone(),
    )
    .await;
    assert_problem(wrong_concert, 403, "QUEUE_NOT_ACTIVE").await;
    buyer.queue_token = String::new();
    let no_queue_token = post_hold(
        &app.http,
        &app.url(""),
        &buyer,
        concert.schedule,
        body.clone(),
    )
    .await;
    assert_problem(no_queue_token, 403, "QUEUE_NOT_ACTIVE").await;
    let no_token = app
        .http
        .post(app.url(&format!("/api/v1/schedules/{}/holds", concert.schedule)))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(no_token, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn a_seat_outside_the_schedule_or_a_malformed_request_is_invalid_input() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let other = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let foreign_seat = seat_ids(&app.pg, other.sections[0]).await[0];
    let buyer = &buyers(&app, concert.id, 1).await[0];
    for body in [
        json!({ "seatIds": [foreign_seat] }),
        json!({ "seatIds": [] }),
        json!({ "sectionId": concert.ga_section, "quantity": 0 }),
        json!({ "sectionId": concert.sections[0], "quantity": 1 }),
        json!({}),
    ] {
        let response = post_hold(&app.http, &app.url(""), buyer, concert.schedule, body).await;
        assert_problem(response, 400, "INVALID_INPUT").await;
    }
    let unknown_section = json!({ "sectionId": 999_999_999, "quantity": 1 });
    let response = post_hold(
        &app.http,
        &app.url(""),
        buyer,
        concert.schedule,
        unknown_section,
    )
    .await;
    assert_problem(response, 404, "SECTION_NOT_FOUND").await;
    let response = post_hold(
        &app.http,
        &app.url(""),
        buyer,
        999_999_999,
        json!({ "seatIds": [1] }),
    )
    .await;
    assert_problem(response, 404, "SCHEDULE_NOT_FOUND").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_hold_releases_its_seats_after_ttl_without_any_reader() {
    let config = test_config(&[
        ("BOXOFFICE_HOLD_TTL_SECS", "1"),
        ("BOXOFFICE_TICK_MS", "50"),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let worker = spawn_worker(&config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let ga = boxoffice_domain::ids::SectionId::new(concert.ga_section.unwrap());
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [first, second] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    let seat_hold = hold_ok(
        &app,
        first,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let ga_hold = hold_ok(
        &app,
        first,
        concert.schedule,
        json!({ "sectionId": ga.get(), "quantity": 2 }),
    )
    .await;
    let owners = app.keys.seat_owners(
        concert.id,
        boxoffice_domain::ids::ScheduleId::new(concert.schedule),
    );
    let counter = app.keys.ga_remaining(concert.id, ga);
    // Nobody reads the seats or the section: the worker alone must give them back.
    eventually(
        "the sweep frees the seats and the places",
        Duration::from_secs(10),
        || async {
            let held: i64 = app.redis.hlen(&owners).await.unwrap();
            let remaining: i64 = app.redis.get(&counter).await.unwrap();
            held == 0 && remaining == 10
        },
    )
    .await;
    eventually(
        "Postgres records both holds as EXPIRED",
        Duration::from_secs(10),
        || async {
            let rows = holds_in_pg(&app.pg, concert.schedule).await;
            rows.len() == 2 && rows.iter().all(|r| r.1 == "EXPIRED")
        },
    )
    .await;
    charge(&app, &first.user, 10_000).await;
    for hold in [&seat_hold, &ga_hold] {
        let id = hold["holdId"].as_str().unwrap();
        let response = pay(&app.http, &app.url(""), &first.user, id, "late").await;
        assert_problem(response, 410, "HOLD_EXPIRED").await;
    }
    // The seats are free for anyone, and the expired holds no longer count toward the limit.
    hold_ok(
        &app,
        second,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    hold_ok(
        &app,
        first,
        concert.schedule,
        json!({ "seatIds": &seats[2..4] }),
    )
    .await;
    worker.stop().await;
}

#[tokio::test]
async fn an_expired_hold_counts_as_free_before_the_sweep_and_cannot_be_paid() {
    // No worker: nothing sweeps, yet the hold's time is up.
    let config = test_config(&[("BOXOFFICE_HOLD_TTL_SECS", "1")]);
    let app = spawn_app_with(config).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seat = seat_ids(&app.pg, concert.sections[0]).await[0];
    let [first, second] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    let hold = hold_ok(&app, first, concert.schedule, json!({ "seatIds": [seat] })).await;
    let taken = post_hold(
        &app.http,
        &app.url(""),
        second,
        concert.schedule,
        json!({ "seatIds": [seat] }),
    )
    .await;
    assert_problem(taken, 409, "SEAT_UNAVAILABLE").await;
    let expires: chrono::DateTime<chrono::Utc> =
        hold["expiresAt"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(
        (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(50),
    )
    .await;
    charge(&app, &first.user, 1_000).await;
    let late = pay(
        &app.http,
        &app.url(""),
        &first.user,
        hold["holdId"].as_str().unwrap(),
        "k",
    )
    .await;
    assert_problem(late, 410, "HOLD_EXPIRED").await;
    hold_ok(&app, second, concert.schedule, json!({ "seatIds": [seat] })).await;
}

#[tokio::test]
async fn releasing_frees_the_seats_and_another_users_hold_is_not_found() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [owner, stranger] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    let hold = hold_ok(
        &app,
        owner,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let id = hold["holdId"].as_str().unwrap();
    let delete = |user: &crate::helpers::User, id: String| {
        app.http
            .delete(app.url(&format!("/api/v1/holds/{id}")))
            .header("authorization", user.bearer())
            .send()
    };
    // Another user's hold does not exist for them, on release and on payment.
    assert_problem(
        delete(&stranger.user, id.to_owned()).await.unwrap(),
        404,
        "HOLD_NOT_FOUND",
    )
    .await;
    charge(&app, &stranger.user, 1_000).await;
    let theirs = pay(&app.http, &app.url(""), &stranger.user, id, "steal").await;
    assert_problem(theirs, 404, "HOLD_NOT_FOUND").await;
    assert_problem(
        delete(&owner.user, HoldId::generate(concert.id).to_string())
            .await
            .unwrap(),
        404,
        "HOLD_NOT_FOUND",
    )
    .await;
    assert_problem(
        delete(&owner.user, "not-a-hold".into()).await.unwrap(),
        404,
        "HOLD_NOT_FOUND",
    )
    .await;
    // The owner releases; releasing again is harmless; the seats are free at once.
    assert_eq!(
        delete(&owner.user, id.to_owned()).await.unwrap().status(),
        204
    );
    assert_eq!(
        delete(&owner.user, id.to_owned()).await.unwrap().status(),
        204
    );
    hold_ok(
        &app,
        stranger,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    // A released GA hold gives its places back.
    let ga = hold_ok(
        &app,
        owner,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 3 }),
    )
    .await;
    assert_eq!(
        delete(&owner.user, ga["holdId"].as_str().unwrap().to_owned())
            .await
            .unwrap()
            .status(),
        204
    );
    let remaining = ga_remaining(&app, concert.id, concert.ga_section.unwrap()).await;
    assert_eq!(remaining, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_acknowledged_hold_or_payment() {
    let config = test_config(&[
        ("BOXOFFICE_STREAM_BATCH", "25"),
        ("BOXOFFICE_STREAM_CLAIM_IDLE_MS", "300"),
        ("BOXOFFICE_TICK_MS", "20"),
        ("BOXOFFICE_WORKER_ID", "doomed"),
    ]);
    let app = spawn_app_with(config.clone()).await;
    let concert = create_concert(&app.pg, Sale::Open, 2, 100, None).await;
    let mut seats = seat_ids(&app.pg, concert.sections[0]).await;
    seats.extend(seat_ids(&app.pg, concert.sections[1]).await);
    let buyers = buyers(&app, concert.id, 100).await;
    // Holds go in while the first worker runs; it is killed wherever it is once it has
    // written some of them.
    let doomed = spawn_worker(&config).await;
    let n = buyers.len();
    let results: Vec<(usize, Value)> = stream::iter(seats.chunks(2).enumerate())
        .map(|(i, pair)| {
            let (app, buyer) = (&app, buyers[i % n].clone());
            let body = json!({ "seatIds": pair });
            async move { (i % n, hold_ok(app, &buyer, concert.schedule, body).await) }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    eventually(
        "the first worker writes some holds",
        Duration::from_secs(10),
        || async { !holds_in_pg(&app.pg, concert.schedule).await.is_empty() },
    )
    .await;
    doomed.kill().await;
    // And a consumer that died holding a batch it never acknowledged: entries delivered to it
    // stay pending until another worker claims them.
    let events = app.keys.hold_events(concert.id);
    let _: fred::types::Value = app
        .redis
        .xreadgroup("sink", "ghost", Some(10), None, false, &events, ">")
        .await
        .unwrap();
    // Pay some holds: payments go to Postgres directly; their `paid` events must not be
    // overwritten by replays of older `held` events.
    let mut paid = Vec::new();
    for (buyer, hold) in results.iter().take(20) {
        let user = &buyers[*buyer].user;
        charge(&app, user, 1_000).await;
        let id = hold["holdId"].as_str().unwrap();
        let response = pay(&app.http, &app.url(""), user, id, &format!("k-{id}")).await;
        assert_eq!(response.status(), 201);
        paid.push(uuid::Uuid::parse_str(id).unwrap());
    }
    let survivor_config = {
        let mut c = config.clone();
        c.worker_id = "survivor".into();
        c
    };
    let survivor = spawn_worker(&survivor_config).await;
    eventually(
        "every hold is in Postgres",
        Duration::from_secs(20),
        || async { holds_in_pg(&app.pg, concert.schedule).await.len() == results.len() },
    )
    .await;
    eventually(
        "the stream is drained and nothing is pending",
        Duration::from_secs(20),
        || async {
            let len: i64 = app.redis.xlen(&events).await.unwrap();
            len == 0
        },
    )
    .await;
    let rows = holds_in_pg(&app.pg, concert.schedule).await;
    let by_id: HashMap<uuid::Uuid, &str> = rows.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(by_id.len(), results.len(), "one row per acknowledged hold");
    for (_, hold) in &results {
        let id = uuid::Uuid::parse_str(hold["holdId"].as_str().unwrap()).unwrap();
        let expected = if paid.contains(&id) { "PAID" } else { "HELD" };
        assert_eq!(by_id[&id], expected, "hold {id}");
    }
    let seats_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id WHERE h.schedule_id = $1",
    )
    .bind(concert.schedule)
    .fetch_one(&app.pg)
    .await
    .unwrap();
    assert_eq!(seats_rows, seats.len() as i64);
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE hold_id = ANY($1)")
        .bind(&paid)
        .fetch_one(&app.pg)
        .await
        .unwrap();
    assert_eq!(payments, paid.len() as i64, "each payment exactly once");
    survivor.stop().await;
}

/// `ack_events.lua` deletes only what the sink has written: acknowledging a later batch while
/// an earlier one is still pending (a slow or dead worker) deletes nothing, and entries not
/// yet delivered stay whatever is acknowledged.
#[tokio::test]
async fn acknowledging_hold_events_never_deletes_one_not_yet_written() {
    use boxoffice_domain::holds::events::{ack, ensure_group, read, ReadFrom};
    let app = spawn_app().await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let hot = &app.state.hot;
    let events = app.keys.hold_events(concert.id);
    ensure_group(hot, concert.id).await.unwrap();
    for i in 0..7 {
        let _: String = app
            .redis
            .xadd(&events, false, None, "*", ("t", format!("test-{i}")))
            .await
            .unwrap();
    }
    let ids = |entries: Vec<boxoffice_domain::holds::events::Entry>| -> Vec<String> {
        entries.into_iter().map(|e| e.id).collect()
    };
    let slow = ids(read(hot, concert.id, "slow", ReadFrom::New, 3)
        .await
        .unwrap());
    let fast = ids(read(hot, concert.id, "fast", ReadFrom::New, 2)
        .await
        .unwrap());
    let len = || async { app.redis.xlen::<i64, _>(&events).await.unwrap() };

    ack(hot, concert.id, &fast).await.unwrap();
    assert_eq!(
        len().await,
        7,
        "the slow batch, pending, precedes the acknowledged one"
    );
    ack(hot, concert.id, &slow).await.unwrap();
    assert_eq!(len().await, 2, "only the two never delivered are left");
    let rest = ids(read(hot, concert.id, "fast", ReadFrom::New, 10)
        .await
        .unwrap());
    assert_eq!(rest.len(), 2, "they are still delivered");
    ack(hot, concert.id, &rest).await.unwrap();
    assert_eq!(len().await, 0);
}

/// The sink's write is idempotent whatever path it takes: a batch of new holds goes in as
/// plain inserts, the same batch replayed (a worker died before acknowledging it) falls back
/// to upserts and changes nothing, and a replayed `held` never moves an ended hold back.
/// (Expired, not paid: a paid hold without its reservation is what the audit reports.)
#[tokio::test]
async fn a_replayed_batch_of_hold_events_is_written_once_and_never_moves_a_hold_back() {
    use boxoffice_domain::{
        holds::{pg::write_events, HoldEvent, HoldEventKind},
        ids::{ScheduleId, SeatId, UserId},
    };
    let app = spawn_app().await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, None).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let held: Vec<HoldEvent> = seats
        .iter()
        .map(|&seat| HoldEvent {
            kind: HoldEventKind::Held,
            hold: HoldId::generate(concert.id),
            user: UserId::new(1),
            schedule: ScheduleId::new(concert.schedule),
            section: None,
            seats: vec![SeatId::new(seat)],
            quantity: 1,
            amount: 100,
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(5),
        })
        .collect();
    assert_eq!(write_events(&app.pg, &held).await.unwrap(), 5);
    // The same batch again: every row is already there.
    assert_eq!(write_events(&app.pg, &held).await.unwrap(), 0);
    // One hold expired, then a batch replaying its `held` beside a hold not yet written.
    let expired = HoldEvent {
        kind: HoldEventKind::Expired,
        ..held[0].clone()
    };
    assert_eq!(write_events(&app.pg, &[expired]).await.unwrap(), 1);
    let newcomer = HoldEvent {
        hold: HoldId::generate(concert.id),
        ..held[1].clone()
    };
    let replay = [held[0].clone(), newcomer];
    assert_eq!(write_events(&app.pg, &replay).await.unwrap(), 1);

    let rows = holds_in_pg(&app.pg, concert.schedule).await;
    assert_eq!(rows.len(), 6, "one row per hold");
    let status: HashMap<uuid::Uuid, &str> = rows.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(status[&held[0].hold.get()], "EXPIRED");
    assert_eq!(
        status.values().filter(|s| **s == "HELD").count(),
        5,
        "the others stay held"
    );
    let seat_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id \
         WHERE h.schedule_id = $1",
    )
    .bind(concert.schedule)
    .fetch_one(&app.pg)
    .await
    .unwrap();
    assert_eq!(seat_rows, 6, "one seat row per hold and seat");
}
