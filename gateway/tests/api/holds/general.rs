//! The general-admission counter: a section never sells past its capacity, and a hold's
//! places are taken once even when Redis lost its scripts mid-call.

use rand::Rng;

use super::*;

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
