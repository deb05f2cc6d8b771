//! Expiry: an unpaid hold gives its seats and places back when its time is up, with no
//! reader to notice, and counts as free even before the worker's sweep.

use super::*;

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
    // Not synchronisation: the premise of the test is that the hold's time is up, and its
    // expiry is judged by Redis's clock (`TIME` in the hold and payment scripts), which
    // `tokio::time::pause` does not reach; with no worker there is no event to wait for
    // instead. The TTL is the shortest the configuration takes (1 s).
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
