//! The event sink: the worker's mirror of the holds into Postgres loses no acknowledged hold
//! or payment when a worker dies mid-batch, deletes only what it wrote, and writes a replayed
//! batch once.

use super::*;

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
