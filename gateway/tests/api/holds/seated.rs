//! Seats: a seat is in at most one live hold, whatever the races between requests and
//! replicas, in Redis and in the sink's copy in Postgres.

use rand::{seq::SliceRandom, Rng};

use super::*;

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
