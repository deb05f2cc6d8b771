//! Dates, sections and seat maps: ACTIVE only, cached per replica, evicted by the replica's
//! own changes, stale across replicas for at most about a second, and rebuilt from Postgres
//! when Redis has lost a schedule's inventory.

use std::time::{Duration, Instant};

use fred::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, buyers, charge, create_concert, eventually, ga_remaining, get_active, hold_ok,
    pay_ok, seat_ids, spawn_app_with, statuses, test_config, Sale,
};

fn section(sections: &Value, id: i64) -> &Value {
    sections["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sectionId"] == id)
        .unwrap()
}

#[tokio::test]
async fn dates_list_the_schedules_on_sale_with_tickets_left() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 2, 5, Some(20)).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    let dates = get_active(
        &app,
        buyer,
        &format!("/api/v1/concerts/{}/schedules", concert.id),
    )
    .await;
    assert_eq!(
        dates["items"],
        json!([{
            "scheduleId": concert.schedule,
            "startsAt": dates["items"][0]["startsAt"],
            "availableSeats": 30
        }])
    );
    // Tickets sold (seats and GA places) leave the count; held ones do not.
    let [reader, payer] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    charge(&app, &payer.user, 1_000).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    // Both holds first: paying ends the payer's ACTIVE session.
    let seat_hold = hold_ok(
        &app,
        payer,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    let ga = json!({ "sectionId": concert.ga_section, "quantity": 1 });
    let ga_hold = hold_ok(&app, payer, concert.schedule, ga).await;
    for hold in [&seat_hold, &ga_hold] {
        pay_ok(&app, &payer.user, hold).await;
    }
    hold_ok(
        &app,
        reader,
        concert.schedule,
        json!({ "seatIds": [seats[2]] }),
    )
    .await;
    let dates = get_active(
        &app,
        reader,
        &format!("/api/v1/concerts/{}/schedules", concert.id),
    )
    .await;
    assert_eq!(dates["items"][0]["availableSeats"], 27);
    // A schedule whose tickets are all sold is no longer listed. Sold out by its counters (a
    // fake, put back at the end so `boxoffice-worker audit` stays green after the suite).
    let counters: Vec<(i64, i32)> =
        sqlx::query_as("SELECT id, sold FROM sections WHERE schedule_id = $1")
            .bind(concert.schedule)
            .fetch_all(&app.pg)
            .await
            .unwrap();
    sqlx::query("UPDATE sections SET sold = capacity WHERE schedule_id = $1")
        .bind(concert.schedule)
        .execute(&app.pg)
        .await
        .unwrap();
    eventually(
        "the sold-out date leaves the list",
        Duration::from_secs(3),
        || async {
            get_active(
                &app,
                buyer,
                &format!("/api/v1/concerts/{}/schedules", concert.id),
            )
            .await["items"]
                == json!([])
        },
    )
    .await;
    // Without an ACTIVE token of this concert: refused.
    let anonymous = app
        .http
        .get(app.url(&format!("/api/v1/concerts/{}/schedules", concert.id)))
        .header("authorization", buyer.user.bearer())
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 403, "QUEUE_NOT_ACTIVE").await;
    for (section, sold) in counters {
        sqlx::query("UPDATE sections SET sold = $2 WHERE id = $1")
            .bind(section)
            .bind(sold)
            .execute(&app.pg)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sections_show_what_is_left_in_each_section() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 2, 5, Some(20)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    let path = format!("/api/v1/schedules/{}/sections", concert.schedule);
    let before = get_active(&app, buyer, &path).await;
    let ga = concert.ga_section.unwrap();
    assert_eq!(section(&before, ga)["kind"], "GA");
    assert_eq!(section(&before, ga)["capacity"], 20);
    assert_eq!(section(&before, ga)["remaining"], 20);
    assert_eq!(section(&before, concert.sections[0])["kind"], "SEATED");
    assert_eq!(section(&before, concert.sections[0])["remaining"], 5);
    assert_eq!(section(&before, concert.sections[0])["price"], 100);
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": &seats[0..2] }),
    )
    .await;
    hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": ga, "quantity": 2 }),
    )
    .await;
    // This replica evicted its own entry: the change shows at once.
    let after = get_active(&app, buyer, &path).await;
    assert_eq!(section(&after, ga)["remaining"], 18);
    assert_eq!(section(&after, concert.sections[0])["remaining"], 3);
    assert_eq!(section(&after, concert.sections[1])["remaining"], 5);
}

/// A seat map goes gzipped to a client that accepts gzip, and decodes to exactly the JSON a
/// client that does not (or refuses it with q=0) gets plain.
#[tokio::test]
async fn a_seat_map_is_gzipped_only_for_clients_that_accept_it_and_decodes_to_the_same_json() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 50, None).await;
    let buyer = &buyers(&app, concert.id, 1).await[0];
    let path = format!(
        "/api/v1/schedules/{}/seats?section={}",
        concert.schedule, concert.sections[0]
    );
    let get = |accept: Option<&'static str>| {
        let mut request = app
            .http
            .get(app.url(&path))
            .header("authorization", buyer.user.bearer())
            .header("queue-token", &buyer.queue_token);
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let headers = response.headers().clone();
            assert_eq!(headers["vary"], "accept-encoding");
            let encoding = headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            (encoding, response.bytes().await.unwrap())
        }
    };
    let (encoding, plain) = get(None).await;
    assert_eq!(encoding, None);
    let items = serde_json::from_slice::<Value>(&plain).unwrap()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 50);
    let (encoding, gzipped) = get(Some("br, gzip;q=0.8")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(
        gzipped.len() < plain.len() / 2,
        "{} vs {}",
        gzipped.len(),
        plain.len()
    );
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, plain);
    let (encoding, refused) = get(Some("gzip;q=0, deflate")).await;
    assert_eq!(encoding, None);
    assert_eq!(refused, plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_maps_show_changes_at_once_on_the_same_replica_and_within_a_second_on_others() {
    let config = test_config(&[]);
    let (a, b) = (
        spawn_app_with(config.clone()).await,
        spawn_app_with(config).await,
    );
    let concert = create_concert(&a.pg, Sale::Open, 2, 5, None).await;
    let seats = seat_ids(&a.pg, concert.sections[0]).await;
    let other_section = seat_ids(&a.pg, concert.sections[1]).await;
    let buyer = &buyers(&a, concert.id, 1).await[0];
    let map = |s: i64| format!("/api/v1/schedules/{}/seats?section={s}", concert.schedule);
    // Both replicas cache both sections as all AVAILABLE.
    for app in [&a, &b] {
        for s in &concert.sections {
            let body = get_active(app, buyer, &map(*s)).await;
            assert!(statuses(&body).values().all(|v| v == "AVAILABLE"));
            assert_eq!(body["items"].as_array().unwrap().len(), 5);
        }
    }
    let first = get_active(&a, buyer, &map(concert.sections[0])).await;
    assert_eq!(first["items"][0]["seatNo"], "S0-1");
    assert_eq!(first["items"][0]["price"], 100);
    hold_ok(
        &a,
        buyer,
        concert.schedule,
        json!({ "seatIds": [seats[0]] }),
    )
    .await;
    let held_at = Instant::now();
    assert_eq!(
        statuses(&get_active(&a, buyer, &map(concert.sections[0])).await)[&seats[0]],
        "HELD"
    );
    eventually(
        "the other replica shows the hold",
        Duration::from_secs(3),
        || async {
            statuses(&get_active(&b, buyer, &map(concert.sections[0])).await)[&seats[0]] == "HELD"
        },
    )
    .await;
    let staleness = held_at.elapsed();
    assert!(
        staleness <= Duration::from_millis(1_500),
        "stale for {staleness:?}"
    );
    // The other section's view was not evicted by a change elsewhere, and is still right.
    assert!(
        statuses(&get_active(&a, buyer, &map(concert.sections[1])).await)
            .iter()
            .all(|(id, v)| other_section.contains(id) && v == "AVAILABLE")
    );
    let unknown = a
        .http
        .get(a.url(&format!(
            "/api/v1/schedules/{}/seats?section=999999999",
            concert.schedule
        )))
        .header("authorization", buyer.user.bearer())
        .header("queue-token", &buyer.queue_token)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "SECTION_NOT_FOUND").await;
    let missing = a
        .http
        .get(a.url(&format!("/api/v1/schedules/{}/seats", concert.schedule)))
        .header("authorization", buyer.user.bearer())
        .header("queue-token", &buyer.queue_token)
        .send()
        .await
        .unwrap();
    assert_problem(missing, 400, "INVALID_INPUT").await;
}

#[tokio::test]
async fn a_schedule_is_rebuilt_from_postgres_when_redis_lost_its_inventory() {
    let app = spawn_app_with(test_config(&[])).await;
    let concert = create_concert(&app.pg, Sale::Open, 1, 5, Some(10)).await;
    let seats = seat_ids(&app.pg, concert.sections[0]).await;
    let [buyer, other] = &buyers(&app, concert.id, 2).await[..] else {
        unreachable!()
    };
    charge(&app, &buyer.user, 1_000).await;
    let sold = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "seatIds": [seats[0]] }),
    )
    .await;
    let ga = hold_ok(
        &app,
        buyer,
        concert.schedule,
        json!({ "sectionId": concert.ga_section, "quantity": 3 }),
    )
    .await;
    pay_ok(&app, &buyer.user, &sold).await;
    pay_ok(&app, &buyer.user, &ga).await;
    // Redis loses everything it had for this concert (as after a restart without persistence).
    let (c, s) = (
        concert.id,
        boxoffice_domain::ids::ScheduleId::new(concert.schedule),
    );
    let k = &app.keys;
    let mut keys = vec![
        k.inventory_loaded(c, s),
        k.seat_owners(c, s),
        k.user_tickets(c, s),
        k.ga_remaining(
            c,
            boxoffice_domain::ids::SectionId::new(concert.ga_section.unwrap()),
        ),
        k.hold_expiry(c),
        k.hold_paying(c),
        k.hold_events(c),
    ];
    for hold in [&sold, &ga] {
        let id = boxoffice_domain::ids::HoldId::parse(hold["holdId"].as_str().unwrap()).unwrap();
        keys.push(k.hold(c, id));
    }
    let deleted: i64 = app.redis.del(keys).await.unwrap();
    assert!(deleted >= 5);
    // The first use rebuilds it from Postgres: the sold seat is still sold, the GA counter
    // counts the sold places, and nothing can be sold twice.
    let map = get_active(
        &app,
        other,
        &format!(
            "/api/v1/schedules/{}/seats?section={}",
            concert.schedule, concert.sections[0]
        ),
    )
    .await;
    assert_eq!(statuses(&map)[&seats[0]], "SOLD");
    let again = crate::helpers::post_hold(
        &app.http,
        &app.url(""),
        other,
        concert.schedule,
        json!({ "seatIds": [seats[0]] }),
    )
    .await;
    assert_problem(again, 409, "SEAT_UNAVAILABLE").await;
    let remaining = ga_remaining(&app, concert.id, concert.ga_section.unwrap()).await;
    assert_eq!(remaining, 7);
}
